"""queue collector: real squeue/sshare output replayed, hostile lines, sshare failure, skip."""

import json
import time
from pathlib import Path

import pytest

from nomade.collectors import queue
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.command import CommandResult, run_command
from nomade.errors import SlurmCommandError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"


NO_JSON = SlurmCommandError(["squeue"], 1, "squeue: unrecognized option '--json'")


def fake_run(outputs):
    """A ctx.run that answers by program name ("squeue --json" for the JSON call); an Exception
    value is raised."""
    calls = []

    def run(argv, timeout, **kw):
        calls.append(list(argv))
        key = "squeue --json" if argv[0] == "squeue" and "--json" in argv else argv[0]
        out = outputs.get(key, NO_JSON) if key == "squeue --json" else outputs[key]
        if isinstance(out, Exception):
            raise out
        return CommandResult(argv, 0, out, "")
    run.calls = calls
    return run


def by_name(metrics, name):
    return {tuple(sorted(dict(m.labels).items())): m.value for m in metrics if m.metric == name}


def test_held_array_and_begintime_counted_by_task():
    """A squeue without --json: the text form, and from then on only the text form."""
    text = (FIXTURES / "squeue_pending_epoch_times.txt").read_text()
    run = fake_run({"squeue": text})
    ctx = CollectContext(settings={"stuck_after_h": 1}, run=run, now=lambda: 1796284588 + 7200)
    col = queue.QueueCollector()
    metrics = col.collect(ctx)
    assert by_name(metrics, "queue.pending") == {(("partition", "debug"),): 23}
    assert by_name(metrics, "queue.running") == {(("partition", "debug"),): 0}
    assert by_name(metrics, "queue.pending_by_reason") == {
        (("partition", "debug"), ("reason", "BeginTime")): 1,
        (("partition", "debug"), ("reason", "JobHeldUser")): 22}
    assert by_name(metrics, "queue.wait_p50_s")[()] == 7200
    assert by_name(metrics, "queue.stuck")[()] == 23
    col.collect(ctx)
    assert ["--json" in c for c in run.calls] == [True, False, False]  # one squeue per cycle after


def test_json_real_22_05_held_array_begintime_running_hostile_name():
    """Real ``squeue --json`` (Slurm 22.05.8, data_parser v0.0.38): bob's job name holds a newline,
    '|' and a fragment of JSON; JSON has no delimiter for it to shift. One squeue call, one RPC."""
    text = (FIXTURES / "squeue_json_v0038_held_array_begintime_running_hostile_name.json").read_text()
    run = fake_run({"squeue --json": text})
    ctx = CollectContext(settings={"stuck_after_h": 1}, run=run, now=lambda: 1796303278 + 7200)
    metrics = queue.QueueCollector().collect(ctx)
    assert run.calls == [list(queue.SQUEUE_JSON_ARGV)]
    assert by_name(metrics, "queue.pending") == {(("partition", "debug"),): 21}
    assert by_name(metrics, "queue.running") == {(("partition", "debug"),): 1}
    assert by_name(metrics, "queue.pending_by_reason") == {
        (("partition", "debug"), ("reason", "BeginTime")): 1,
        (("partition", "debug"), ("reason", "JobHeldUser")): 20}
    jobs = queue.parse_squeue_json(text)
    assert {j.job_id: j.user for j in jobs if j.state == "RUNNING"} == {"2009": "bob"}
    assert "2007_[1-20%4]" in [j.job_id for j in jobs]


def test_json_newer_data_parser_forms():
    """v0.0.39+ numbers as {set, infinite, number}, v0.0.40+ states as lists; unset times and
    junk records are left out, not errors."""
    doc = {"jobs": [
        {"job_id": {"set": True, "infinite": False, "number": 5}, "job_state": ["PENDING", "REQUEUED"],
         "partition": "gpu", "user_name": "alice", "account": "a", "state_reason": "Priority",
         "submit_time": {"set": True, "infinite": False, "number": 1000},
         "array_task_string": "", "array_job_id": {"set": True, "number": 0},
         "array_task_id": {"set": False, "infinite": False, "number": 0}},
        {"job_id": 6, "job_state": ["RUNNING"], "partition": "gpu", "array_job_id": 4,
         "array_task_id": {"set": True, "number": 2}, "submit_time": {"set": False, "number": 0}},
        {"job_id": "7; rm -rf /", "job_state": "PENDING"}, {"job_id": True}, "junk", None,
    ]}
    jobs = queue.parse_squeue_json(json.dumps(doc))
    assert [(j.job_id, j.state, j.partition, j.submit_ts) for j in jobs] == [
        ("5", "PENDING", "gpu", 1000.0), ("4_2", "RUNNING", "gpu", None)]
    with pytest.raises(ValueError):
        queue.parse_squeue_json('{"errors": []}')


def test_json_refused_by_a_down_slurmctld_is_not_a_missing_json():
    """squeue --json failing because slurmctld is down raises (the run is recorded as failed) and
    keeps JSON for the next cycle; only "unrecognized option" and plugin errors switch to text."""
    down = SlurmCommandError(["squeue"], 1, "slurm_load_jobs error: Unable to contact slurm controller")
    run = fake_run({"squeue --json": down, "squeue": "1|debug|RUNNING|0|a|x|None\n"})
    ctx = CollectContext(settings={}, run=run)
    with pytest.raises(SlurmCommandError):
        queue.QueueCollector().collect(ctx)
    assert ctx.state.get("json", True) is True


def test_iso_times_parse_as_local_time():
    jobs = queue.parse_squeue((FIXTURES / "squeue_pending_held_array_begintime.txt").read_text())
    assert len(jobs) == 4
    assert jobs[0].submit_ts == time.mktime(time.strptime("2026-12-03T07:56:28", "%Y-%m-%dT%H:%M:%S"))


def test_wait_percentiles_and_running():
    now = 10_000.0
    lines = ["1|gpu|RUNNING|100|a|x|None"]
    lines += [f"{i}|cpu|PENDING|{int(now - w)}|a|x|Priority" for i, w in enumerate([10, 20, 30, 40, 1000], 2)]
    metrics = queue.queue_metrics(queue.parse_squeue("\n".join(lines)), now, 500)
    assert by_name(metrics, "queue.wait_p50_s")[()] == 30
    assert by_name(metrics, "queue.wait_p90_s")[()] == 1000
    assert by_name(metrics, "queue.wait_max_s")[()] == 1000
    assert by_name(metrics, "queue.stuck")[()] == 1
    assert by_name(metrics, "queue.running") == {(("partition", "cpu"),): 0, (("partition", "gpu"),): 1}


def test_hostile_lines():
    text = "\n".join([
        "7|debug|PENDING|Unknown|alice|acc|ReqNodeNotAvail, UnavailableNodes:vm|x|y",  # '|' in reason
        "continuation of a reason\x1b[31m with a newline|||||",
        "8_[0-9223372036854775808]|debug|PENDING|N/A|bob|acc|JobHeldAdmin",            # 2^63 array
        "9_[1-3,7]|debug|RUNNING|1796284588|bob|acc|None",
        "not-a-job|debug|PENDING|0|u|a|r",
        "10|debug|PENDING|0|u|a|\x00\x07bell",
        "",
    ])
    jobs = queue.parse_squeue(text)
    assert [j.job_id for j in jobs] == ["7", "8_[0-9223372036854775808]", "9_[1-3,7]", "10"]
    assert jobs[0].reason == "ReqNodeNotAvail" and jobs[0].submit_ts is None
    assert jobs[1].tasks == queue.MAX_ARRAY_TASKS
    assert jobs[2].tasks == 4
    assert jobs[3].reason == "bell"
    metrics = queue.queue_metrics(jobs, 2e9, 3600)
    assert by_name(metrics, "queue.pending")[(("partition", "debug"),)] == 1 + queue.MAX_ARRAY_TASKS + 1


def test_array_task_counts():
    assert queue.array_task_count("329_[1-20%4]") == 20
    assert queue.array_task_count("1_[1,3,5-7]") == 5
    assert queue.array_task_count("1_[1-9:2]") == 5
    assert queue.array_task_count("1_5") == 1
    assert queue.array_task_count("1_[junk]") == 1


def test_sshare_failure_gives_no_fairshare():
    run = fake_run({"sshare": SlurmCommandError(["sshare"], 1, "sshare: error: slurmdbd down")})
    ctx = CollectContext(settings={}, run=run, now=lambda: 100.0)
    assert queue.fairshare_metrics(ctx, 5.0, 600.0) == []
    assert "slurmdbd down" in ctx.state["sshare_error"]


def test_sshare_hostile_rows():
    rows = queue.parse_sshare(" acc|u|0.5\nacc|u|9223372036854775808\nbad\nacc|u|nan?\n|x|inf\n")
    assert rows == [("acc", "u", 0.5), ("acc", "u", 9223372036854775808.0), ("", "x", float("inf"))]


def test_skipped_when_squeue_absent(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ctx = CollectContext(settings={}, run=run_command)
    with pytest.raises(CollectorSkipped, match="squeue not found"):
        queue.QueueCollector().collect(ctx)


def test_squeue_failure_is_an_error_not_a_skip():
    run = fake_run({"squeue": SlurmCommandError(["squeue"], 1, "slurm_load_jobs error: Unable to contact")})
    with pytest.raises(SlurmCommandError):
        queue.QueueCollector().collect(CollectContext(settings={}, run=run))


def test_fairshare_only_every_fairshare_interval():
    """sshare is one more slurmctld RPC: read every fairshare_interval_s (600 s), not every run."""
    run = fake_run({"sshare": (FIXTURES / "sshare_lab_accounts.txt").read_text()})
    t = [1796284588.0]
    ctx = CollectContext(settings={}, run=run, now=lambda: t[0])
    got = []
    for step in (0, 120, 120, 600):
        t[0] += step
        got.append(len(queue.fairshare_metrics(ctx, 5.0, 600.0)))
    assert [c[0] for c in run.calls] == ["sshare", "sshare"]
    assert got[0] > 0 and got[1:3] == [0, 0] and got[3] == got[0]
    shares = by_name(queue.fairshare_metrics(CollectContext(settings={}, run=run, now=lambda: 0.0), 5.0, 1.0),
                     "queue.fairshare")
    assert shares[(("account", "research"), ("user", "alice"))] == 0.0
    assert (("account", "root"), ("user", "")) not in shares         # no number: left out
