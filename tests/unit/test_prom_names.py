"""nomade.web.prom_names: stored metric names, label names and label values made valid (and
promtool-lint clean) for Prometheus, hostile text included."""

import re
from pathlib import Path

import pytest

from nomade.web.prom_names import label_name, label_value, labels, metric_name

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@pytest.mark.parametrize("metric,name,kind,factor", [
    ("disk.used_bytes", "nomade_disk_used_bytes", "gauge", 1.0),
    ("disk.inodes_total", "nomade_disk_inodes", "gauge", 1.0),
    ("queue.wait_p90_s", "nomade_queue_wait_p90_seconds", "gauge", 1.0),
    ("node.cpu_busy_pct", "nomade_node_cpu_busy_ratio", "gauge", 0.01),
    ("nfs.rtt_ms", "nomade_nfs_rtt_seconds", "gauge", 1e-3),
    ("slurm.sched_max_cycle_us", "nomade_slurm_sched_max_cycle_seconds", "gauge", 1e-6),
    ("nfs.ops_per_s", "nomade_nfs_ops_per_second", "gauge", 1.0),
    ("node.disk_write_bps", "nomade_node_disk_write_bytes_per_second", "gauge", 1.0),
    ("license.expires_ts", "nomade_license_expires_timestamp_seconds", "gauge", 1.0),
    ("gpu.temp_c", "nomade_gpu_temp_celsius", "gauge", 1.0),
    ("gpu.power_w", "nomade_gpu_power_watts", "gauge", 1.0),
    ("slurm.rpc_count", "nomade_slurm_rpcs", "counter", 1.0),
    ("slurm.rpc_time_s", "nomade_slurm_rpc_time_seconds", "counter", 1.0),
    ("instruments.waiting_count", "nomade_instruments_waiting", "gauge", 1.0),
    ("acme.jobs_total", "nomade_acme_jobs", "gauge", 1.0),
    ("nodes.cpus_total", "nomade_nodes_cpus", "gauge", 1.0),
    ("slurm.agent_count", "nomade_slurm_agents", "gauge", 1.0),
    ("acme.size_mb", "nomade_acme_size_bytes", "gauge", 1024.0 ** 2),
    ("acme.rtt_ms_max", "nomade_acme_rttms_max", "gauge", 1.0),
    ("acme.gauge_level", "nomade_acme_level", "gauge", 1.0),
    ("fooBar.BazQux", "nomade_foo_bar_baz_qux", "gauge", 1.0),
    ("nomade.self", "nomade_self", "gauge", 1.0),
])
def test_metric_names(metric, name, kind, factor):
    got = metric_name(metric)
    assert (got.name, got.kind) == (name, kind) and got.factor == pytest.approx(factor)


@pytest.mark.parametrize("hostile", ["a b\nc", 'x"y\\z', "9lives", "", "\x00\x1b[2J", "dots.and:colons",
                                     "ünïcödé", "__reserved", "--", "a" * 300])
def test_any_text_gives_a_valid_name(hostile):
    assert NAME.match(metric_name(hostile).name)
    assert LABEL.match(label_name(hostile)) and not label_name(hostile).startswith("__")


def test_reserved_and_our_own_label_names_are_exported():
    assert [label_name(k) for k in ("le", "quantile", "cluster", "host", "mountPoint", "9x", "")] == \
        ["exported_le", "exported_quantile", "exported_cluster", "exported_host", "mount_point",
         "label_9x", "label"]


def test_label_values_keep_newlines_and_quotes_and_drop_control_bytes():
    assert label_value('a"b\\c\nd\te') == 'a"b\\c\nd\te'            # the exposition escapes these
    assert label_value("x\x00y\x1b[31mz\x7f") == "x?y?[31mz?"
    assert label_value("bad\udcffbyte") == "bad\ufffdbyte"            # surrogateescape'd path
    assert len(label_value("v" * 5000)) == 1024
    assert label_value(2 ** 63) == "9223372036854775808"


def test_labels_that_sanitise_alike_are_all_kept():
    got = labels({"a-b": "1", "a.b": "2", "a_b": "3"})
    assert sorted(got.values()) == ["1", "2", "3"] and set(got) == {"a_b", "a_b_2", "a_b_3"}


def test_every_built_in_collector_metric_is_listed_in_docs_metrics():
    monitoring = (DOCS / "monitoring.md").read_text()
    listed = (DOCS / "metrics.md").read_text()
    found = set(re.findall(r"`((?:disk|quota|node|nodes|nfs|zfs|queue|slurm|license|gpu)\.[a-z0-9_]+)`",
                           monitoring))
    assert len(found) > 60
    for metric in sorted(found):
        pn = metric_name(metric)
        shown = pn.name + ("_total" if pn.kind == "counter" else "")
        assert f"| `{metric}` | `{shown}` | {pn.kind} |" in listed, metric
