"""The node recorder on the real cluster (tests/slurm/cluster.sh, cgroup v1): a job writing to
disk and to tmpfs and a job growing its memory until the cgroup kills it. The recorder daemon
runs as root with a 1 s interval; the spool is ingested twice; the memory job must have been
warned about before it died."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

NOMADE = [sys.executable, "-c", "from nomade.cli.main import main; main()"]

WRITER = """#!/bin/bash
cd "$WORKDIR"
python3 - <<'PY'
import time
with open("disk.dat", "wb") as f, open("/dev/shm/nomade-rec-%s.dat" % __import__("os").environ["SLURM_JOB_ID"], "wb") as g:
    end = time.time() + 8
    while time.time() < end:
        f.write(b"d" * 200000); g.write(b"t" * 100000); f.flush(); g.flush(); time.sleep(0.1)
PY
rm -f /dev/shm/nomade-rec-$SLURM_JOB_ID.dat
"""

GROWER = """#!/bin/bash
python3 - <<'PY'
import time
hog = []
while True:
    hog.append(b"m" * 10_000_000)   # 10 MB, touched
    time.sleep(0.5)
PY
"""


def sbatch(script: Path, *args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args, str(script)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return out.strip().split(";")[0]


def job_state(job: str):
    out = subprocess.run(["sacct", "-j", job, "-X", "-n", "-P", "-o", "State,End"],
                         capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    return out[0].split("|") if out else ["", ""]


def wait_ended(jobs, timeout):
    end = time.time() + timeout
    while time.time() < end:
        q = subprocess.run(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i"], capture_output=True,
                           text=True, timeout=30).stdout.split()
        if not q:
            return
        time.sleep(1)
    pytest.fail(f"jobs {jobs} still running after {timeout} s")


def epoch(slurm_time: str) -> float:
    return time.mktime(time.strptime(slurm_time, "%Y-%m-%dT%H:%M:%S"))


def test_recorder_samples_real_jobs_and_warns_before_oom(slurm_cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)
    data, spool = tmp_path / "data", tmp_path / "spool"
    writer, grower = tmp_path / "writer.sh", tmp_path / "grower.sh"
    writer.write_text(WRITER)
    grower.write_text(GROWER)
    env = dict(os.environ, NOMADE_DATA_DIR=str(data))
    rec = subprocess.Popen(NOMADE + ["record", "--interval", "1", "--spool-dir", str(spool)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        w = sbatch(writer, "--mem=300M", "-t", "2", f"--export=ALL,WORKDIR={work}",
                   "-o", str(tmp_path / "w.out"))
        g = sbatch(grower, "--mem=200M", "-t", "2", "-o", str(tmp_path / "g.out"))
        wait_ended([w, g], 120)
        time.sleep(2)
    finally:
        rec.send_signal(signal.SIGTERM)
        _out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err

    runs = []
    for _ in range(2):
        r = subprocess.run(NOMADE + ["ingest", "spool", "--json", "--keep", str(spool)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    assert runs[0]["samples_new"] > 0 and runs[1]["samples_new"] == 0 and runs[1]["events_new"] == 0

    db = sqlite3.connect(str(data / "nomade.db"))
    db.row_factory = sqlite3.Row
    dup = db.execute("SELECT count(*) FROM (SELECT 1 FROM samples GROUP BY cluster, job_id, node, ts "
                     "HAVING count(*) > 1)").fetchone()[0]
    assert dup == 0
    sw = db.execute("SELECT * FROM job_summaries WHERE job_id = ?", (w,)).fetchone()
    assert sw is not None and sw["sample_count"] >= 3
    assert sw["write_local_bytes"] > 1_000_000 and sw["write_tmpfs_bytes"] > 500_000
    assert sw["cg_mem_limit_mb"] == 300

    state, end = job_state(g)
    assert state in ("OUT_OF_MEMORY", "FAILED", "CANCELLED"), state
    ev = db.execute("SELECT * FROM events WHERE job_id = ? AND kind = 'memory_projection'", (g,)).fetchone()
    assert ev is not None, f"no warning for the memory job {g}: {err[-2000:]}"
    detail = json.loads(ev["detail"])
    assert detail["limit"] == 200 and detail["ttl_s"] < 900
    assert ev["created_at"] < epoch(end), (ev["created_at"], end)
    last = db.execute("SELECT max(ts) FROM samples WHERE job_id = ?", (g,)).fetchone()[0]
    assert ev["created_at"] <= last
