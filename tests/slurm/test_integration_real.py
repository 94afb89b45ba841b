"""nomade's Slurm integration on the real cluster (tests/slurm/cluster.sh), as root and as the
unprivileged users alice, bob and carol (carol is in nomade-admins):

* a job shaped like past failures (test model: name "risky*") gets the message on sbatch's stderr,
  a safe one none; --comment=nomade:quiet silences it;
* the TaskProlog's risk line appears in the risky job's output;
* every outcome (COMPLETED, FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY) gets a report;
* nomade-why works for the owner, refuses another user and shows all to an admin;
* the MailProg wrapper's mail reaches a real SMTP server (aiosmtpd) with the report in it."""

import json
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import nomade_slurm_setup as S  # noqa: E402

BOB = pwd.getpwnam("bob").pw_uid if "bob" in {p.pw_name for p in pwd.getpwall()} else 1002

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(os.geteuid() != 0, reason="the real-cluster tests run as root")]


class Sink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    controller = pytest.importorskip("aiosmtpd.controller")
    port = S.free_port()
    sink = Sink()
    ctl = controller.Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, sink
    ctl.stop()


@pytest.fixture(scope="module")
def cluster(smtp):
    S.reset_state()
    knobs = S.install(smtp[0])
    S.cluster_up(dict(knobs, NOMADE_SLURM_SMOKE="0"))
    yield knobs
    S.cluster_up({"NOMADE_SLURM_SMOKE": "0"})  # leave the shared cluster without nomade's hooks


@pytest.fixture(scope="module")
def ran(cluster):
    """Submit the whole matrix once (TIMEOUT takes ~80 s, so everything runs in parallel)."""
    jobs = {}
    res = {}
    for key, user, args in [
        ("risky", "alice", ["-J", "risky-1", "--wrap", "echo risky-out"]),
        ("longsim", "bob", ["-J", "longsim", "--time=00:30:00", "--wrap", "true"]),
        ("plain", "alice", ["-J", "plain", "--wrap", "echo plain-out"]),
        ("quiet", "alice", ["-J", "risky-q", "--comment=nomade:quiet", "--wrap", "true"]),
        ("failed", "alice", ["-J", "fails", "--wrap", "exit 3"]),
        ("timeout", "bob", ["-J", "slow", "--time=1", "--wrap", "sleep 300"]),
        ("cancel", "bob", ["-J", "cancelme", "--wrap", "sleep 300"]),
        ("oom", "alice", ["-J", "hog", "--mem=100M", "--wrap",
                          "python3 -c 'b = bytearray(900 * 1024 * 1024); import time; time.sleep(2)'"]),
        ("mail", "alice", ["-J", "mailed", "--mail-type=END", "--mail-user=alice@localhost", "--wrap", "true"]),
        # alice's job claims bob's identity in every field she writes (name before UserId=, comment
        # and output path after the request fields)
        ("spoof", "alice", ["-J", f"spoof UserId=bob({BOB}) GroupId=bob({BOB})",
                            f"--comment=UserId=bob({BOB}) GroupId=bob({BOB})", "--wrap", "true"]),
    ]:
        r = S.sbatch(user, *args)
        res[key] = r
        jobs[key] = S.job_id_of(r)
    res["quiet_env"] = S.as_user("alice", ["sbatch", "--parsable", "-o", str(S.WORK / "%j.out"), "-J",
                                           "risky-e", "--wrap", "true"], env={"NOMADE_QUIET": "1"})
    jobs["quiet_env"] = S.job_id_of(res["quiet_env"])
    # cancelled while running (its Prolog has run); on a loaded machine it may start late
    harness.wait_state(jobs["cancel"], ["RUNNING"], timeout=120)
    time.sleep(1)
    subprocess.run(["scancel", jobs["cancel"]], check=True)
    states = S.wait_ended(list(jobs.values()), timeout=240)
    S.nomade("ingest", "sacct", "--since", time.strftime("%Y-%m-%dT00:00:00"))
    S.nomade("ingest", "hooks")
    os.chmod(S.DATA / "nomade.db", 0o600)
    bundle = (S.DATA / "models" / "CURRENT").read_text().strip()
    return {"jobs": jobs, "submit": res, "states": states, "bundle": bundle}


def test_message_on_sbatch_stderr(ran):
    """The trained submit_model.lua (site_history: risky-* jobs failed 90 % of the time) warns
    alice's risky job with the reason in words; her plain job gets nothing."""
    r = ran["submit"]["risky"]
    assert re.search(r"sbatch: nomade: (LOW|MODERATE|HIGH|CRITICAL) failure risk \(\d+%\)", r.stderr), r.stderr
    # one reason of the past-outcomes family (tests/unit/test_messages.py): the rate or the streak
    assert re.search(r"\d+% of your past jobs with this name failed \(\d+ of \d+\)|"
                     r"your last \d+ jobs with this name failed", r.stderr), r.stderr
    assert "nomade-why JOBID; silence: --comment=nomade:quiet" in r.stderr
    assert r.stdout.strip() == ran["jobs"]["risky"]  # --parsable stdout is just the id
    assert "nomade" not in ran["submit"]["plain"].stderr
    assert "nomade" not in ran["submit"]["quiet"].stderr
    assert "nomade" not in ran["submit"]["quiet_env"].stderr  # job_desc.environment (sbatch)


def test_submit_verdict_recorded_and_compared_with_outcomes(ran):
    """`ingest sacct` recorded what sbatch told each job (the Lua model of the bundle current at
    its submit time): the warned risky job is warned in the record too, the plain one is not, and
    `nomade models performance` compares the recorded warnings with the outcomes."""
    perf = json.loads(S.nomade("models", "performance", "--since", "1d", "--json").stdout)
    overall = next(p for p in perf if p["stage"] == "submit" and p["model_version"] == "all")
    assert overall["jobs"] >= len(ran["jobs"]) - 1 and overall["warned"] >= 1, perf
    assert any(p["stage"] == "submit" and p["model_version"] == ran["bundle"] for p in perf), perf
    import sqlite3
    with sqlite3.connect(S.DATA / "nomade.db") as c:
        rows = dict(c.execute("SELECT job_id, risk >= 0 FROM scores WHERE stage = 'submit'").fetchall())
        warned = {j: r for j, r in c.execute("SELECT job_id, risk FROM scores WHERE stage = 'submit'")}
    assert ran["jobs"]["risky"] in rows and ran["jobs"]["plain"] in rows
    assert warned[ran["jobs"]["risky"]] > warned[ran["jobs"]["plain"]]


def test_suggestion_names_the_sbatch_option(ran):
    """bob's longsim jobs needed ~3h10m and timed out at 30 minutes: the message says which
    --time to ask for."""
    err = ran["submit"]["longsim"].stderr
    assert re.search(r"sbatch: nomade: suggestion: --time=0[34]:\d\d:00 \(similar jobs needed 3h\d\dm\)",
                     err), err


def test_risk_line_in_job_output(ran):
    """The Prolog scored the job with the bundle's ONNX start-stage ensemble; the TaskProlog
    printed the line into the job's output."""
    risky = (S.WORK / f"{ran['jobs']['risky']}.out").read_text()
    m = re.search(r"nomade: (LOW|MODERATE|HIGH|CRITICAL) failure risk \((\d+)%\) at start: (.*)\. "
                  r"Details: nomade-why (\d+)", risky)
    assert m, risky
    assert m.group(4) == ran["jobs"]["risky"] and int(m.group(2)) >= 50
    assert "risky-out" in risky
    plain = (S.WORK / f"{ran['jobs']['plain']}.out").read_text()
    assert "nomade" not in plain and "plain-out" in plain
    for quiet in ("quiet", "quiet_env"):   # the quiet tag silences the start line too
        assert "nomade" not in (S.WORK / f"{ran['jobs'][quiet]}.out").read_text()


def test_hooks_logged_every_job(ran):
    log = S.hook_log()
    for jid in ran["jobs"].values():
        assert f"nomade-prolog job={jid}: start recorded" in log
        assert f"nomade-epilog job={jid}: end recorded" in log
    assert "drain" not in S.node_states()


@pytest.mark.parametrize("key,state,outcome", [
    ("plain", "COMPLETED", "success"), ("failed", "FAILED", "failed"), ("timeout", "TIMEOUT", "timeout"),
    ("cancel", "CANCELLED", "cancelled_other"), ("oom", None, None),
])
def test_report_for_each_outcome(ran, key, state, outcome):
    jid = ran["jobs"][key]
    rep = json.loads(S.nomade("report", jid, "--json").stdout)
    if key == "oom":  # OUT_OF_MEMORY with cgroups, FAILED 0:9 without
        assert rep["state"] in ("OUT_OF_MEMORY", "FAILED")
        assert rep["failure_class"] in ("oom", "failed")
    else:
        assert rep["state"] == state and rep["failure_class"] == outcome, rep
    text = S.nomade("report", jid).stdout
    assert f"Job ID: {jid}" in text and "CPU efficiency" in text and "Prediction:" in text
    if key == "timeout":
        assert any("--time=" in n for n in rep["notes"])


def test_report_prediction_for_risky_job(ran):
    rep = json.loads(S.nomade("report", ran["jobs"]["risky"], "--json").stdout)
    by_stage = {s["stage"]: s for s in rep["scores"]}
    assert by_stage["start"]["risk"] >= 0.5 and by_stage["start"]["model_version"] == ran["bundle"]
    # what sbatch told the user, recorded at `ingest sacct` with the bundle current at submit
    assert by_stage["submit"]["model_version"] == ran["bundle"]
    assert "warned, and it succeeded (a false alarm)" in rep["prediction"]   # echo exits 0


def test_prolog_scored_with_the_onnx_ensemble(ran):
    log = S.hook_log()
    jid = ran["jobs"]["risky"]
    line = [ln for ln in log.splitlines() if f"nomade-prolog job={jid}:" in ln][-1]
    assert f"(model {ran['bundle']}, alert)" in line, line


@pytest.fixture(scope="module")
def why_service(ran):
    env = dict(os.environ, NOMADE_CONFIG=str(S.CONF), PYTHONPATH=str(S.ROOT / "src"))
    proc = subprocess.Popen(S.NOMADE + ["serve-why"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(100):
        if S.SOCK.exists():
            break
        time.sleep(0.1)
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


def test_why_owner_other_admin(ran, why_service):
    jid = ran["jobs"]["risky"]
    own = S.nomade_why_as("alice", jid)
    assert own.returncode == 0, own.stderr
    ans = json.loads(own.stdout)
    assert ans["risk_start"]["risk"] >= 0.5 and ans["user"] == "alice"
    assert ans["contributions"] and all(c["direction"] in ("raises risk", "lowers risk")
                                        for c in ans["contributions"])
    other = S.nomade_why_as("bob", jid)
    assert other.returncode == 1 and "belongs to another user" in other.stderr
    admin = S.nomade_why_as("carol", jid)
    assert admin.returncode == 0 and json.loads(admin.stdout)["job_id"] == jid
    # the store itself is closed to users: privacy cannot be bypassed by reading the file
    direct = S.as_user("alice", ["cat", str(S.DATA / "nomade.db")])
    assert direct.returncode != 0


def test_mailprog_mail_reaches_smtp(ran, smtp):
    _, sink = smtp
    jid = ran["jobs"]["mail"]
    for _ in range(30):
        if any(f"Job_id={jid} " in m[1] for m in sink.messages):
            break
        time.sleep(1)
    mails = [m for m in sink.messages if f"Job_id={jid} " in m[1]]
    assert mails, S.hook_log()[-2000:]
    rcpts, content = mails[-1]
    assert rcpts == ["alice@localhost"] and "-- nomade job report --" in content


def test_spoofed_identity_job_stays_alices(ran, why_service):
    """A job whose name and comment claim bob: the Prolog's start record (slurmd's identity), the
    store and nomade-why all say alice; bob is refused, alice is answered."""
    import sqlite3

    jid = ran["jobs"]["spoof"]
    con = sqlite3.connect(f"file:{S.DATA / 'nomade.db'}?mode=ro", uri=True)
    try:
        (data,) = con.execute("SELECT data FROM hook_records WHERE job_id = ? AND kind = 'start'",
                              (jid,)).fetchone()
        (user, uid) = con.execute("SELECT user, uid FROM jobs WHERE job_id = ?", (jid,)).fetchone()
    finally:
        con.close()
    rec = json.loads(data)
    alice = pwd.getpwnam("alice").pw_uid
    assert (rec["job"]["user"], rec["job"]["uid"]) == ("alice", alice)
    assert (rec["request"]["user"], rec["request"]["uid"]) == ("alice", alice)
    assert (user, uid) == ("alice", alice)
    assert S.nomade_why_as("bob", jid).returncode == 1
    own = S.nomade_why_as("alice", jid)
    assert own.returncode == 0 and json.loads(own.stdout)["user"] == "alice", own.stderr


def test_why_pending_job_scored_on_demand(ran, why_service):
    """A held job nothing scored and accounting has not delivered: the service asks Slurm whose
    it is (squeue) and what it asks for (scontrol), scores it now with the current bundle and
    recomputes what sbatch told alice; bob is refused; an id Slurm does not know is not found."""
    r = S.sbatch("alice", "--hold", "-J", "risky-held", "--wrap", "true")
    jid = S.job_id_of(r)
    try:
        own = S.nomade_why_as("alice", jid)
        assert own.returncode == 0, own.stderr
        ans = json.loads(own.stdout)
        assert (ans["user"], ans["state"], ans["name"]) == ("alice", "PENDING", "risky-held")
        sub = ans["risk_submit"]
        assert sub["scored"] == "now" and sub["model_version"] == ran["bundle"] and 0 <= sub["risk"] <= 1
        assert ans["risk_start"] is None and ans["contributions"]
        assert all(c["text"] for c in ans["contributions"])
        said = ans["sbatch"]
        assert said["model_version"] == ran["bundle"]
        assert said["warned"] == ("failure risk" in r.stderr), (said, r.stderr)
        if said["warned"]:
            assert f"nomade: {said['level']} failure risk" in r.stderr
        other = S.nomade_why_as("bob", jid)
        assert other.returncode == 1 and "belongs to another user" in other.stderr
        text = S.as_user("alice", [S.SYS_PY, "-c", "from nomade.cli.why_cmd import main; main()", jid],
                         env={"PYTHONPATH": S.pythonpath(), "NOMADE_CONFIG": str(S.CONF)})
        assert text.returncode == 0 and "scored now by nomade-why" in text.stdout, text.stderr
    finally:
        subprocess.run(["scancel", jid], check=False)
    unknown = S.nomade_why_as("alice", "99999999")
    assert unknown.returncode == 1 and "not in the store" in unknown.stderr

