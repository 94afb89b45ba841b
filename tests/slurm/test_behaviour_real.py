"""The behaviour analysis (docs/behaviour.md) on jobs the real cluster ran (tests/slurm/cluster.sh,
cgroup v1, one node of 8 CPUs on 2 real cores).

Five kinds of jobs, ``PER_KIND`` of each, submitted round-robin so that every kind runs next to the
others (the node statistics of a job's run window are then shared across kinds, not a label):
CPU-bound (a busy loop), writing to local disk (a file in the job's work directory, kept open),
writing to tmpfs (a file in /dev/shm, kept open), memory growing until the cgroup kills it under
``--mem`` (OUT_OF_MEMORY), and idle (sleep). Each runs 5-8 s under the same ``--mem``. During
the jobs the node recorder runs as a daemon (1 s interval) and ``nomade collect -C nodestats
--interval 2`` stores the node statistics; then ``nomade ingest spool`` and ``nomade ingest sacct``
(live, from the test's start) fill the store, and the analysis runs as root (an admin) with
``behaviour.min_count`` = 3 so that groups of a few jobs are reported.

Why 12 per kind and varied run times: the mixture tries at most one profile per 10 fitted jobs
(25 jobs: 2 profiles; 50 jobs: exactly 5, and a run where two jobs shared a moment of blocked
processes on the node spent the fifth on those two and merged the CPU-bound and idle jobs; 60
jobs leave room for such a component), and five equal-length jobs per kind ran in lock-step waves whose jobs share
one node-statistics window and one runtime; those ties (properties of the node at that time, not
of the job) then outweighed the kinds and the profiles followed the waves (docs/behaviour.md,
"Tested on the real cluster"); the jobs are also submitted 0.4 s apart. Job output goes to
/dev/null: the recorder splits a process's writes equally between the filesystem kinds of the
files it has open for writing, so with stdout in a local file a tmpfs writer showed half its bytes
as local writes and stood less apart from the disk writers.

Asserted: every profile holding at least half a kind's worth of jobs is >= 80 % one kind (no
profile mixes kinds; a kind may be split), >= 80 % of every kind's jobs are in profiles it owns
(``nomade profiles --json`` for the profiles, the admin's ``nomade similarity --export`` for
which job is in which), the largest of them named after the kind's measured trait; the OOM jobs are the only
failures, ``nomade profiles`` counts them in their profile's ``oom`` class, the failure
assortativity of the similarity network is positive with a permutation p-value <= 0.05, and a
danger hotspot of ``nomade similarity --json`` covers the OOM jobs with a failure rate well above
the base rate."""

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

import harness

pytestmark = pytest.mark.slurm

NOMADE = [sys.executable, "-c", "from nomade.cli.main import main; main()"]
PER_KIND = 12
MEM = "256M"
SUBMIT_GAP_S = 0.4

CPU = """#!/bin/bash
python3 -c 'import time
end = time.time() + {run_s}
x = 0
while time.time() < end:
    x += 1'
"""

# writes a few MB a second to one file kept open (the recorder attributes a process's writes by the
# filesystems of the files it has open for writing), then removes it
WRITER = """#!/bin/bash
python3 - {path} <<'PY'
import os, sys, time
path = sys.argv[1] + "/nomade-beh-" + os.environ["SLURM_JOB_ID"] + ".dat"
try:
    with open(path, "wb") as f:
        end = time.time() + {run_s}
        while time.time() < end:
            f.write(b"w" * 500000); f.flush(); time.sleep(0.1)
finally:
    os.unlink(path)
PY
"""

GROWER = """#!/bin/bash
python3 - <<'PY'
import time
hog = []
while True:
    hog.append(b"m" * 10000000)   # 10 MB, touched; the cgroup's limit ends it
    time.sleep({pause})
PY
"""

IDLE = "#!/bin/bash\nsleep {run_s}\n"
KINDS = ("cpu", "disk", "tmpfs", "oom", "idle")
# a kind's profile has one of these among its distinguishing features (idle: none stands out)
TRAITS = {"cpu": {"cpu_eff"}, "oom": {"mem_eff"}, "tmpfs": {"tmpfs_write"},
          "disk": {"local_write", "write_log", "peak_write_rate", "write_intensity"}}


def script(kind: str, i: int, work: Path) -> str:
    """Job i of a kind; run times vary from 5 to 8 s (the OOM jobs' growth rate likewise), so that
    the jobs do not run in lock-step waves that share one node-statistics window."""
    run_s = 5 + (3 * i + KINDS.index(kind)) % 4
    if kind == "cpu":
        return CPU.format(run_s=run_s)
    if kind == "idle":
        return IDLE.format(run_s=run_s)
    if kind == "oom":
        return GROWER.format(pause=0.1 + 0.03 * run_s)
    return WRITER.format(path=shlex.quote(str(work)) if kind == "disk" else "/dev/shm", run_s=run_s)


def nomade(env: Dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(NOMADE + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout, cwd="/tmp")
    assert proc.returncode == 0, f"nomade {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM a daemon started by this test (SIGKILL after 30 s), wait for it; its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)[1] + "\n(killed: did not stop on SIGTERM)"


def run_jobs(work: Path) -> Dict[str, str]:
    """Submit PER_KIND jobs of each kind, round-robin, a little apart (no lock-step start);
    {job id: kind}. Output to /dev/null: a job's stdout file on local disk would take half of a
    tmpfs writer's bytes (the recorder splits a process's writes between the filesystem kinds of
    the files it has open for writing)."""
    kinds: Dict[str, str] = {}
    for i in range(PER_KIND):
        for kind in KINDS:
            job = harness.submit("root", "-J", f"beh_{kind}_{i}", f"--mem={MEM}", "-c1", "-t", "2",
                                 "-o", "/dev/null", script=script(kind, i, work))
            kinds[job] = kind
            time.sleep(SUBMIT_GAP_S)
    return kinds


def test_behaviour_kinds_form_profiles_and_oom_is_a_hotspot(slurm_cluster, tmp_path):
    work, data, spool = (tmp_path / d for d in ("work", "data", "spool"))
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    env = dict(os.environ, NOMADE_DATA_DIR=str(data), NOMADE_BEHAVIOUR_MIN_COUNT="3")
    harness.wait_queue_empty()          # jobs of earlier tests would share the node and the window
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)
    rec = subprocess.Popen(NOMADE + ["record", "--interval", "1", "--spool-dir", str(spool)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    col = subprocess.Popen(NOMADE + ["collect", "-C", "nodestats", "--interval", "2", "--no-alerts"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    kinds: Dict[str, str] = {}
    try:
        time.sleep(2.5)
        kinds = run_jobs(work)
        states = harness.wait_done(list(kinds), timeout=240)
        time.sleep(2)                   # the recorder's last pass after the last job
    finally:
        errs = [stop(rec), stop(col)]
        for job in kinds:
            Path(f"/dev/shm/nomade-beh-{job}.dat").unlink(missing_ok=True)
    assert rec.returncode == 0 and col.returncode == 0, (rec.returncode, col.returncode, errs)
    final = {j: s.split()[0] for j, s in states.items() if j in kinds}
    oom = {j for j, k in kinds.items() if k == "oom"}
    assert all(final[j] == "OUT_OF_MEMORY" for j in oom), final
    assert all(final[j] == "COMPLETED" for j in kinds if j not in oom), final
    harness.wait_accounting_settled(list(kinds), ["JobID", "State", "MaxRSS", "TotalCPU", "End"])

    nomade(env, "ingest", "spool", str(spool))
    nomade(env, "ingest", "sacct", "--since", since)

    profiles = json.loads(nomade(env, "profiles", "--json").stdout)
    summary = json.loads(nomade(env, "similarity", "--json").stdout)
    nomade(env, "similarity", "--export", str(tmp_path / "net.json"), "--json")
    export = json.loads((tmp_path / "net.json").read_text())
    context = (f"{errs}\nprofiles: {json.dumps(profiles)}\nsimilarity: {json.dumps(summary)}\n"
               + "\n".join(f"{n['job_id']} {kinds.get(n['job_id'])} {n['outcome']} p{n['profile']}"
                           for n in export["nodes"]))

    db = sqlite3.connect(str(data / "nomade.db"))
    summaries = {r[0] for r in db.execute("SELECT job_id FROM job_summaries WHERE sample_count >= 2")}
    node_series = db.execute("SELECT count(*) FROM metric_series WHERE source = 'nodestats'").fetchone()[0]
    db.close()
    assert set(kinds) <= summaries, f"jobs without a recorder summary: {set(kinds) - summaries}"
    assert node_series > 0, "nomade collect stored no node statistics"
    profile_of = {n["job_id"]: n["profile"] for n in export["nodes"]}
    assert set(kinds) <= set(profile_of), context
    check_profiles(kinds, profile_of, profiles, oom, context)
    check_oom_hotspot(summary, export, oom, context)


def check_profiles(kinds: Dict[str, str], profile_of: Dict[str, int], profiles, oom, context: str) -> None:
    """Profiles separate the kinds: every profile holding at least half a kind's worth of jobs is
    >= 80 % one kind (its owner), and >= 80 % of each kind's jobs are in profiles it owns. A kind
    may be split (the mixture may spend a spare profile on part of one kind, e.g. the shorter
    disk writers) and a few jobs may sit in a small mixed profile (jobs that shared a moment of
    the node's statistics), but no profile mixes kinds. The largest profile a kind owns is named
    after what the recorder and sacct measured; the OOM kind's profiles count the OOM class and
    fail, the others do not."""
    members: Dict[int, Counter] = {}
    for job, kind in kinds.items():
        members.setdefault(profile_of[job], Counter())[kind] += 1
    owner: Dict[int, str] = {}
    for p, m in members.items():
        kind, n = m.most_common(1)[0]
        size = sum(m.values())
        if size >= PER_KIND / 2:
            assert n >= 0.8 * size, f"profile {p} mixes kinds: {dict(m)}\n{context}"
        if n > size / 2:
            owner[p] = kind
    shown = {p["id"]: p for p in profiles["profiles"]}
    for kind in sorted(set(kinds.values())):
        own = {p: m[kind] for p, m in members.items() if owner.get(p) == kind}
        assert sum(own.values()) >= 0.8 * PER_KIND, f"{kind}: in its own profiles {own} of {dict(members)}\n{context}"
        home = max(own, key=lambda p: own[p])
        traits = {t["feature"] for t in shown[home]["traits"]}
        assert kind not in TRAITS or traits & TRAITS[kind], f"{kind}: profile {shown[home]}\n{context}"
        for p in own:
            if kind == "oom":
                assert shown[p]["failure_rate"] >= 0.8, f"{kind}: {shown[p]}\n{context}"
            else:
                assert (shown[p]["failure_rate"] or 0.0) <= 0.2, f"{kind}: {shown[p]}\n{context}"
        if kind == "oom":
            assert sum(shown[p]["by_class"].get("oom", 0) for p in own) >= 0.8 * len(oom), context


def check_oom_hotspot(summary, export, oom, context: str) -> None:
    """Failures cluster in the network, and a danger zone's range holds the OOM jobs."""
    assert summary["failures"] >= len(oom), context
    assert summary["assortativity"] > 0, context
    assert summary["assortativity_p_value"] <= 0.05, context
    danger = [h for h in summary["hotspots"] if h["kind"] == "danger"]
    assert danger, f"no danger hotspot\n{context}"
    base = summary["base_failure_rate"]
    covering: List[dict] = []
    for h in danger:
        zone = next(z for z in export["zones"] if z["feature"] == h["feature"] and z["kind"] == "danger")
        assert zone["low"] == h["low"] and zone["high"] == h["high"], context
        if h["failures"] >= 0.8 * len(oom) and h["failure_rate"] >= 2 * base and h["ci"][0] > base:
            covering.append(h)
    assert covering, f"no danger zone concentrates the OOM failures (base {base})\n{context}"
