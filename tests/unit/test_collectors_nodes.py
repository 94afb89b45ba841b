"""nodes collector: real sinfo output (idle, drained with '|' in the reason), hostile reasons,
hwmon from a captured-style tree, skip when sinfo is absent."""

from pathlib import Path

import pytest

from nomade.collectors import nodes
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.command import CommandResult, run_command

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
MIB = 1024 * 1024


def metric(metrics, name, **labels):
    found = [m for m in metrics if m.metric == name and all(m.label(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_drained_node_with_pipe_in_reason():
    recs = nodes.parse_sinfo_nodes((FIXTURES / "sinfo_nodes_drained_reason_with_pipe.txt").read_text())
    assert len(recs) == 1
    state = metric(nodes.node_metrics(recs), "nodes.state", node="vm")
    assert state.value == 1
    assert state.label("state") == "idle+completing+drain"
    assert state.label("reason").startswith("nomade test | with pipe, a=b and a very long reason")
    assert state.label("reason_user") == "root"
    assert state.label("reason_time") == "2026-12-03T07:57:09"


def test_idle_node_values():
    ms = nodes.node_metrics(nodes.parse_sinfo_nodes((FIXTURES / "sinfo_nodes_idle.txt").read_text()))
    assert metric(ms, "nodes.state", node="vm").label("reason") == ""
    assert metric(ms, "nodes.cpus_alloc", node="vm").value == 1
    assert metric(ms, "nodes.cpus_total", node="vm").value == 8
    assert metric(ms, "nodes.mem_total_bytes", node="vm").value == 21694 * MIB
    assert metric(ms, "nodes.mem_alloc_bytes", node="vm").value == 500 * MIB
    assert metric(ms, "nodes.load1", node="vm").value == pytest.approx(0.77)


def test_hostile_reason_newline_duplicates_and_huge_numbers():
    text = "\n".join([
        "n1|down|0/0/4/4|9223372036854775808|N/A|N/A|2026-01-01T00:00:00|admin|bad DIMM",
        "  see ticket 42|n9|idle|0/4/0/4|1|1|1|x|y|z",       # reason went on past a newline
        "n2|drained|0/0/4/4|1000|0|0.5|Unknown|Unknown|reason\x1b[2J with escape",
        "n2|drained|0/0/4/4|1000|0|0.5|Unknown|Unknown|same node, second partition",
        "",
    ])
    recs = nodes.parse_sinfo_nodes(text)
    assert [r.node for r in recs] == ["n1", "n2"]
    assert recs[0].reason == "bad DIMM see ticket 42|n9|idle|0/4/0/4|1|1|1|x|y|z"
    assert recs[0].mem_total_mb is None and recs[0].load1 is None
    assert "\x1b" not in recs[1].reason
    names = {m.metric for m in nodes.node_metrics(recs) if m.label("node") == "n1"}
    assert "nodes.mem_total_bytes" not in names and "nodes.load1" not in names


def _hwmon(root: Path) -> Path:
    chip = root / "class" / "hwmon" / "hwmon0"
    chip.mkdir(parents=True)
    (chip / "name").write_text("coretemp\n")
    (chip / "temp1_input").write_text("45000\n")
    (chip / "temp1_label").write_text("Package id 0\n")
    (chip / "temp2_input").write_text("garbage\n")
    other = root / "class" / "hwmon" / "hwmon1"
    other.mkdir()
    (other / "temp1_input").write_text("-5500\n")
    return root


def test_hwmon_temperatures(tmp_path):
    ms = nodes.read_hwmon(_hwmon(tmp_path))
    assert {m.label("sensor"): m.value for m in ms} == {"coretemp/Package id 0": 45.0, "hwmon1/temp1": -5.5}
    assert nodes.read_hwmon(tmp_path / "absent") == []


def test_collect_one_sinfo_call_plus_hwmon(tmp_path):
    calls = []

    def run(argv, timeout, **kw):
        calls.append(argv)
        return CommandResult(argv, 0, (FIXTURES / "sinfo_nodes_idle.txt").read_text(), "")
    ctx = CollectContext(settings={}, run=run, sys=_hwmon(tmp_path), hostname="vm")
    ms = nodes.NodesCollector().collect(ctx)
    assert calls == [list(nodes.SINFO_ARGV)]
    assert metric(ms, "node.temp_c", sensor="coretemp/Package id 0").host == "vm"


def test_skipped_when_sinfo_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CollectorSkipped, match="sinfo not found"):
        nodes.NodesCollector().collect(CollectContext(settings={}, run=run_command, sys=tmp_path))
