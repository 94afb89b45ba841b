"""slurm_health collector: real sdiag/scontrol ping/unmunge output replayed, daemons down, hostile
sdiag lines, skip when sdiag is absent."""

from pathlib import Path

import pytest

from nomade.collectors import slurm_health as sh
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.command import CommandResult, run_command
from nomade.errors import SlurmCommandError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"


@pytest.fixture(autouse=True)
def slurm_tools_installed(monkeypatch):
    """The replayed commands' tools count as installed (daemon_metrics asks shutil.which first),
    also on a machine without Slurm."""
    monkeypatch.setattr(sh.shutil, "which", lambda name: f"/usr/bin/{name}")


def values(metrics, name, key):
    return {m.label(key): m.value for m in metrics if m.metric == name}


def test_sdiag_after_jobs():
    parsed = sh.parse_sdiag((FIXTURES / "sdiag_busy_after_jobs.txt").read_text())
    ms = sh.sdiag_metrics(parsed)
    scalars = {m.metric: m.value for m in ms if not m.labels}
    assert scalars["slurm.server_threads"] >= 1
    assert scalars["slurm.agent_queue"] == 0
    by_type = values(ms, "slurm.rpc_count", "type")
    assert by_type["REQUEST_JOB_INFO"] > 0 and by_type["REQUEST_SUBMIT_BATCH_JOB"] > 0
    assert set(values(ms, "slurm.rpc_user_count", "user")) >= {"root", "alice"}
    # the backfill block's "Last cycle" is not taken for the main scheduler's
    idle = sh.parse_sdiag((FIXTURES / "sdiag_idle_cluster.txt").read_text())
    assert idle["scalars"]["slurm.sched_last_cycle_us"] == 0


def test_sdiag_hostile_lines():
    text = ("Server thread count:  9223372036854775808\n"
            "Agent queue size:     3\n"
            "Remote Procedure Call statistics by message type\n"
            "\tREQUEST_X\x1b[0m  ( 1) count:9223372036854775808 ave_time:1 total_time:1\n"
            "\tREQUEST_PING  ( 1008) count:3     ave_time:202    total_time:606\n"
            "\tgarbage line count:\n"
            "Remote Procedure Call statistics by user\n"
            "\tevil|user  ( 1001) count:2 ave_time:5 total_time:10\n")
    parsed = sh.parse_sdiag(text)
    assert parsed["scalars"] == {"slurm.agent_queue": 3.0}
    assert parsed["type"] == [("REQUEST_PING", 3, 606)]
    assert parsed["user"] == [("evil|user", 2, 10)]


SSHARE = (FIXTURES / "sshare_lab_accounts.txt").read_text()


def fake_run(answers):
    def run(argv, timeout, **kw):
        key = " ".join(argv[:2]) if argv[0] == "munge" else argv[0]
        out = answers.get(key, SSHARE) if key == "sshare" else answers[key]
        if isinstance(out, Exception):
            raise out
        if argv[0] == "unmunge":
            assert kw.get("input_text") == "CRED"
        return CommandResult(argv, 0, out, "")
    return run


def test_all_daemons_up():
    run = fake_run({"sdiag": (FIXTURES / "sdiag_idle_cluster.txt").read_text(),
                    "scontrol": (FIXTURES / "scontrol_ping_up.txt").read_text(),
                    "sacctmgr": "       lab \n", "munge -n": "CRED",
                    "unmunge": (FIXTURES / "unmunge_success.txt").read_text()})
    ms = sh.SlurmHealthCollector().collect(CollectContext(settings={}, run=run))
    assert values(ms, "slurm.up", "daemon") == {"slurmctld": 1, "slurmdbd": 1, "munge": 1}


def test_daemons_down_still_reported():
    down = SlurmCommandError(["x"], None, "", message="x timed out after 5 s")
    run = fake_run({"sdiag": SlurmCommandError(["sdiag"], 1, "sdiag: error: Unable to contact slurm controller"),
                    "scontrol": SlurmCommandError(["scontrol"], 1, "Slurmctld(primary) at vm is DOWN"),
                    "sacctmgr": down, "munge -n": down, "unmunge": down})
    ctx = CollectContext(settings={}, run=run)
    ms = sh.SlurmHealthCollector().collect(ctx)
    assert values(ms, "slurm.up", "daemon") == {"slurmctld": 0, "slurmdbd": 0, "munge": 0}
    assert "Unable to contact" in ctx.state["sdiag_error"]


def test_ping_and_unmunge_text():
    assert sh.ping_says_up("Slurmctld(primary) at a is DOWN\nSlurmctld(backup) at b is UP\n")
    assert not sh.ping_says_up("Slurmctld(primary) at a is DOWN\n")
    assert not sh.unmunge_says_ok("STATUS:          Expired credential (15)\n")


def test_skipped_when_sdiag_absent(monkeypatch):
    monkeypatch.undo()     # the real shutil.which, on an empty PATH
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CollectorSkipped, match="sdiag not found"):
        sh.SlurmHealthCollector().collect(CollectContext(settings={}, run=run_command))


def test_no_ping_when_sdiag_answered_ping_when_it_did_not():
    """sdiag's answer proves slurmctld is up: `scontrol ping` (one more slurmctld RPC per cycle,
    bench/collect_cost.py) runs only when sdiag failed, to tell "down" from "sdiag broken"."""
    calls = []
    answers = {"sdiag": (FIXTURES / "sdiag_idle_cluster.txt").read_text(),
               "scontrol": (FIXTURES / "scontrol_ping_up.txt").read_text(),
               "sacctmgr": "lab\n", "munge -n": "CRED", "unmunge": (FIXTURES / "unmunge_success.txt").read_text()}
    inner = fake_run(answers)

    def run(argv, timeout, **kw):
        calls.append(argv[0])
        return inner(argv, timeout, **kw)
    ms = sh.SlurmHealthCollector().collect(CollectContext(settings={}, run=run))
    assert "scontrol" not in calls and values(ms, "slurm.up", "daemon")["slurmctld"] == 1
    calls.clear()
    answers["sdiag"] = SlurmCommandError(["sdiag"], 1, "sdiag: error: Unable to contact slurm controller")
    ms = sh.SlurmHealthCollector().collect(CollectContext(settings={}, run=run))
    assert "scontrol" in calls and values(ms, "slurm.up", "daemon")["slurmctld"] == 1


def test_fairshare_read_with_sdiag_every_fairshare_interval():
    """sshare moved here from the queue collector: slurm_health runs in the cycles without sinfo,
    so sshare never lands in the cycle that already costs slurmctld 3 RPCs."""
    calls = []
    inner = fake_run({"sdiag": (FIXTURES / "sdiag_idle_cluster.txt").read_text(), "sacctmgr": "lab\n",
                      "munge -n": "CRED", "unmunge": (FIXTURES / "unmunge_success.txt").read_text()})

    def run(argv, timeout, **kw):
        calls.append(argv[0])
        return inner(argv, timeout, **kw)
    t = [1000.0]
    ctx = CollectContext(settings={"fairshare_interval_s": 600}, run=run, now=lambda: t[0])
    col = sh.SlurmHealthCollector()
    shares = []
    for step in (0, 120, 480):
        t[0] += step
        shares.append(sum(1 for m in col.collect(ctx) if m.metric == "queue.fairshare"))
    assert calls.count("sshare") == 2 and shares[0] > 0 and shares[1] == 0 and shares[2] == shares[0]
