"""The queue, nodes and slurm_health collectors against the real cluster, through the real
run_command: a held job and a held array show as pending by task with their reason; a drained
node shows its state, reason, who drained it and when (and is resumed whatever happens)."""

import os
import sys
from pathlib import Path

import pytest

from nomade.collectors.base import CollectContext
from nomade.collectors.nodes import NodesCollector
from nomade.collectors.queue import QueueCollector
from nomade.collectors.slurm_health import SlurmHealthCollector
from nomade.command import run_command

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(os.geteuid() != 0, reason="the real-cluster tests run as root")]


def ctx(**settings):
    return CollectContext(settings=settings, run=run_command, sys=Path("/nonexistent-sys"))


def test_held_job_and_array_pending_by_task(slurm_cluster):
    """Through ``squeue --json`` (this squeue has it: one RPC), then the same through the text
    form; a job name with '|', a tab and a newline moves nothing in either."""
    ids = [harness.submit("alice", "--hold", "-J", "nomade|held\tname\n|x|RUNNING", wrap="true"),
           harness.submit("alice", "--hold", "--array=1-5", "-J", "arr", wrap="true")]
    try:
        c = ctx(stuck_after_h=0)
        metrics = QueueCollector().collect(c)
        assert c.state.get("json", True) is True
        text_ctx = ctx(stuck_after_h=0)
        text_ctx.state["json"] = False
        text_metrics = QueueCollector().collect(text_ctx)
    finally:
        harness.sh(["scancel"] + list(ids), check=False)
    for got in (metrics, text_metrics):
        held = [m for m in got if m.metric == "queue.pending_by_reason" and m.label("reason") == "JobHeldUser"]
        assert sum(m.value for m in held) >= 6
        assert sum(m.value for m in got if m.metric == "queue.stuck") >= 6
    pending = {m.label("partition"): m.value for m in metrics if m.metric == "queue.pending"}
    assert pending == {m.label("partition"): m.value for m in text_metrics if m.metric == "queue.pending"}


def test_drained_node_reason_user_time(slurm_cluster):
    node = slurm_cluster.node
    harness.sh(["scontrol", "update", f"nodename={node}", "state=drain", 'reason=nomade test'])
    try:
        metrics = NodesCollector().collect(ctx())
    finally:
        slurm_cluster.resume_node()
    state = next(m for m in metrics if m.metric == "nodes.state" and m.label("node") == node)
    assert "drain" in state.label("state")
    assert state.label("reason") == "nomade test"
    assert state.label("reason_user") == "root"
    assert state.label("reason_time").startswith("20")
    assert "drain" not in harness.node_state(node)


def test_slurm_health_all_up(slurm_cluster):
    metrics = SlurmHealthCollector().collect(ctx())
    assert {m.label("daemon"): m.value for m in metrics if m.metric == "slurm.up"} == {
        "slurmctld": 1, "slurmdbd": 1, "munge": 1}
    assert any(m.metric == "slurm.rpc_count" and m.label("type") == "REQUEST_JOB_INFO" for m in metrics)
    assert any(m.metric == "slurm.server_threads" for m in metrics)
    assert any(m.metric == "queue.fairshare" and m.label("user") == "alice" for m in metrics)
