"""``/metrics`` (nomade.web.metrics_endpoint) checked by the real ``promtool check metrics``
(Debian's prometheus package): a store with collector metrics (hostile label values among
them), collector runs, scores, a current model, an ingest high-water mark and firing alerts is
rendered, and promtool must report neither errors nor lint problems. The exposition is parsed
back with prometheus_client's parser: hostile values survive the escaping unchanged."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from nomade.cli.main import cli, run_cli
from nomade.collectors.base import Metric
from nomade.config import load_config
from nomade.jobrecord import JobRecord
from nomade.store import jobs as store_jobs
from nomade.store import metrics as sm
from nomade.store import models as store_models
from nomade.store.db import open_store
from nomade.store.scores import Score, write_score
from nomade.web import metrics_endpoint

PROMTOOL = "/usr/bin/promtool"
DOCS = Path(__file__).resolve().parents[2] / "docs"
HOSTILE = 'a"quote\\back\nnew\x00nul\x1b[31m\u00e9'
HOSTILE_KEY = 'weird key"\n'


# a collector cycle, hostile label keys and values among it
FIXTURE_METRICS = [
    Metric.of("disk.used_bytes", 600, mount="/scratch", fstype="nfs"),
    Metric.of("disk.size_bytes", 1000, mount="/scratch", fstype="nfs"),
    Metric.of("disk.inodes_total", 10, mount="/scratch", fstype="nfs"),
    Metric.of("disk.used_bytes", 5, mount=HOSTILE, fstype="ext4"),
    Metric.of("disk.size_bytes", 10, mount=HOSTILE, fstype="ext4"),
    Metric.of("queue.pending", 4, partition="gpu"),
    Metric.of("queue.running", 2, partition="gpu"),
    Metric.of("queue.wait_p50_s", 30.0),
    Metric.of("node.cpu_busy_pct", 55.0, host="n1", cpu="all"),
    Metric.of("nfs.rtt_ms", 2.5, host="n1", mount="/home", server="fs1", op="READ"),
    Metric.of("nfs.ops_per_s", 9, host="n1", mount="/home", server="fs1", op="all"),
    Metric.of("slurm.rpc_count", 123, type="REQUEST_JOB_INFO"),
    Metric.of("slurm.rpc_user_count", 7, user="alice"),
    Metric("license.held", 1.0, (("feature", "matlab"), ("host", "ws1"), ("server", "27000@lic"),
                                 ("user", "bob"))),
    Metric.of("quota.used_bytes", 9, mount="/home", kind="user", name="carol"),
    Metric.of("quota.used_bytes", 9, mount="/home", kind="group", name="physics"),
    Metric.of("nodes.state", 1, node="n1", state="idle+drain", reason=HOSTILE,
              reason_user="root", reason_time="2026-01-01T00:00:00"),
    Metric.of("node.temp_c", 41, host="n1", sensor="coretemp/Package id 0"),
    Metric("weird.metric-name!Total_ms", 3.0, ((HOSTILE_KEY, HOSTILE), ("le", "x"), ("cluster", "x"))),
    Metric.of("gpu.power_w", 250, host="g1", gpu="0", uuid="GPU-1", name="H100"),
    Metric.of("acme.level", float("inf"), tank="a"), Metric.of("acme.level", float("-inf"), tank="b"),
    Metric.of("collector.up", 5), Metric.of("slurm.rpcs", 1),     # our own name; the counter's as a gauge
]


def fill(store, now=None):
    """Collector metrics of two clusters, runs, jobs, scores, a current model, a high-water mark
    (times relative to ``now``, default the moment of the call: a module-level time went stale
    while a long test session ran)."""
    now = time.time() if now is None else now
    cyc = FIXTURE_METRICS
    sm.write_cycle(store, "alpha", "test", cyc, now - 30)
    sm.write_cycle(store, "beta", "disk", [Metric.of("disk.used_bytes", 1, mount="/")], now - 30)
    sm.write_cycle(store, "alpha", "old", [Metric.of("disk.used_bytes", 1, mount="/gone")], now - 86400)
    sm.record_run(store, "disk", now - 30, True, "", 0.2, 3)
    sm.record_run(store, "zfs", now - 30, False, "no zpool command", 0.0, 0)
    jobs = [JobRecord("alpha", str(i), job_id_raw=i, user="alice", uid=1000, state=s, is_final=1,
                      submit_time=now - 3600, end_time=now - 60)
            for i, s in enumerate(["FAILED", "COMPLETED", "TIMEOUT", "OUT_OF_MEMORY"], 1)]
    store_jobs.upsert_jobs(store, jobs, "test")
    store_jobs.set_high_water(store, "sacct:alpha", now - 120)
    store_models.add_model(store, "m1", "/models/m1", "candidate", now - 7200, {"thresholds": {"alert": 0.5}})
    store_models.make_current(store, "m1", now - 3600)
    with store.transaction() as conn:                       # tests may write rows directly
        for i, risk in enumerate([0.9, 0.7, 0.65, 0.95], 1):
            write_score(conn, Score("alpha", str(i), "submit", "m1", risk, None, "[]", now - 1800))
        write_score(conn, Score("alpha", "1", "start", "m1", 0.1, None, "[]", now - 1700))
    try:
        from nomade.store import alerts as store_alerts
    except ImportError:
        return
    rows = [{"fingerprint": f"fp{i}", "rule": rule, "cluster": "alpha", "severity": sev, "state": state,
             "labels": {}, "value": 1.0, "summary": "s", "description": "d", "owner": None,
             "started_at": now - 600, "fired_at": now - 500, "resolved_at": None, "updated_at": now - 500}
            for i, (rule, sev, state) in enumerate([("disk_full", "critical", "firing"),
                                                    ("disk_full", "critical", "firing"),
                                                    ("queue_stuck", "warning", "firing"),
                                                    (HOSTILE, "info", "firing"),
                                                    ("node_down", "warning", "pending")])]
    store_alerts.save_pass(store, rows, [], lambda ids: [])


@pytest.fixture()
def rendered(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path), "cluster": "alpha"})
    with open_store(cfg.store_path) as store:
        fill(store)
        body, ctype = metrics_endpoint.render(cfg, store)
    return body, ctype, tmp_path


def promtool_or_skip():
    if os.path.exists(PROMTOOL):
        return PROMTOOL
    if os.environ.get("CI") == "true":
        pytest.fail(f"{PROMTOOL} is missing (Debian package prometheus); CI must have it")
    pytest.skip(f"{PROMTOOL} is missing (apt-get install prometheus)")


def test_promtool_check_metrics_passes_with_no_problem(rendered):
    body, ctype, _ = rendered
    assert ctype.startswith("text/plain; version=0.0.4")
    proc = subprocess.run([promtool_or_skip(), "check", "metrics"], input=body, capture_output=True,
                          timeout=60)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0 and not out.strip(), out + "\n---\n" + body.decode()


def _parsed(body):
    from prometheus_client.parser import text_string_to_metric_families
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def test_names_labels_values_and_privacy(rendered):
    body, _, _ = rendered
    samples = _parsed(body)
    by = {}
    for s in samples:
        by.setdefault(s.name, []).append(s)
    # hostile label values are escaped in the text and come back unchanged (control bytes as ?)
    assert 'a\\"quote\\\\back\\nnew' in body.decode()
    mounts = {s.labels["mount"] for s in by["nomade_disk_used_bytes"]}
    assert 'a"quote\\back\nnew?nul?[31m\u00e9' in mounts and "/scratch" in mounts
    assert "/gone" not in mounts                                     # older than metrics_max_age_s
    ratio = {s.labels["mount"]: s.value for s in by["nomade_disk_used_ratio"]}
    assert ratio["/scratch"] == pytest.approx(0.6)
    assert {s.labels["cluster"] for s in by["nomade_disk_used_bytes"]} == {"alpha", "beta"}
    assert by["nomade_disk_inodes"][0].value == 10
    assert by["nomade_node_cpu_busy_ratio"][0].value == pytest.approx(0.55)
    assert by["nomade_nfs_rtt_seconds"][0].value == pytest.approx(0.0025)
    assert by["nomade_queue_wait_p50_seconds"][0].value == 30
    assert by["nomade_slurm_rpcs_total"][0].value == 123 and "nomade_slurm_rpcs" not in by
    assert by["nomade_collected_collector_up"][0].value == 5
    weird = by["nomade_weird_metric_name_total_seconds"][0]
    assert weird.value == pytest.approx(0.003)
    assert weird.labels["exported_le"] == "x" and weird.labels["exported_cluster"] == "x"
    assert weird.labels["cluster"] == "alpha" and weird.labels["weird_key"].startswith('a"quote')
    # no per-user series or labels by default
    text = body.decode()
    assert "alice" not in text and "bob" not in text and "carol" not in text
    assert "nomade_license_held" not in by and "nomade_slurm_rpcs_by_user_total" not in by
    assert [s.labels["name"] for s in by["nomade_quota_used_bytes"]] == ["physics"]
    assert "reason_user" not in by["nomade_nodes_state"][0].labels
    # health, model, ingest, risk levels
    up = {s.labels["collector"]: s.value for s in by["nomade_collector_up"]}
    assert up == {"disk": 1.0, "zfs": 0.0}
    assert by["nomade_model_age_seconds"][0].value == pytest.approx(7200, abs=60)
    # warned at submit (>= 0.5): jobs 1 FAILED, 2 COMPLETED, 3 TIMEOUT, 4 OUT_OF_MEMORY
    prec = {(s.labels["stage"], s.labels["version"]): s.value for s in by["nomade_model_precision"]}
    assert prec == {("submit", "all"): 0.75, ("submit", "m1"): 0.75}     # none warned at start
    recall = {(s.labels["stage"], s.labels["version"]): s.value for s in by["nomade_model_recall"]}
    assert recall[("submit", "m1")] == 1.0 and recall[("start", "m1")] == 0.0
    assert by["nomade_ingest_lag_seconds"][0].value == pytest.approx(120, abs=60)
    levels = {s.labels["level"]: s.value for s in by["nomade_jobs_by_risk_level"]}
    assert levels == {"LOW": 1, "HIGH": 2, "CRITICAL": 1}             # the latest stage's risk


def test_firing_alerts_by_rule_and_severity(rendered):
    pytest.importorskip("nomade.store.alerts")
    body, _, _ = rendered
    firing = {(s.labels["rule"], s.labels["severity"]): s.value for s in _parsed(body)
              if s.name == "nomade_alerts_firing"}
    assert firing[("disk_full", "critical")] == 2 and firing[("queue_stuck", "warning")] == 1
    assert ("node_down", "warning") not in firing                    # pending is not firing
    assert len(firing) == 3


def test_user_labels_when_the_site_turns_them_on(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path), "web.metrics_user_labels": True})
    with open_store(cfg.store_path) as store:
        fill(store)
        body, _ = metrics_endpoint.render(cfg, store)
    text = body.decode()
    assert 'user="bob"' in text and 'reason_user="root"' in text and 'exported_host="ws1"' in text
    proc = subprocess.run([promtool_or_skip(), "check", "metrics"], input=body, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


def _no_constant(name):
    raise AssertionError(f"--json printed {name}, which is not JSON")


def test_cli_prints_and_writes_a_textfile(tmp_path, capsys):
    data = tmp_path / "d"
    data.mkdir()
    with open_store(data / "nomade.db") as store:
        fill(store)
    assert run_cli(cli, ["--data-dir", str(data), "metrics"]) == 0
    out = capsys.readouterr().out
    assert "nomade_disk_used_bytes{" in out
    target = tmp_path / "tf" / "nomade.prom"
    target.parent.mkdir()
    assert run_cli(cli, ["--data-dir", str(data), "metrics", "--textfile", str(target)]) == 0
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert target.read_text().startswith("# HELP")
    assert run_cli(cli, ["--data-dir", str(data), "metrics", "--json"]) == 0
    families = {f["name"]: f for f in json.loads(capsys.readouterr().out, parse_constant=_no_constant)}
    assert "nomade_collector_up" in families
    assert {s["value"] for s in families["nomade_acme_level"]["samples"]} == {"inf", "-inf"}
    assert run_cli(cli, ["--data-dir", str(data), "metrics", "--textfile",
                         str(tmp_path / "missing" / "x.prom")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_an_empty_store_renders_and_passes(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    with open_store(cfg.store_path) as store:
        body, _ = metrics_endpoint.render(cfg, store)
    proc = subprocess.run([promtool_or_skip(), "check", "metrics"], input=body, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), (proc.stdout + proc.stderr).decode()


def test_the_grafana_dashboard_queries_parse_and_use_exported_names(rendered, tmp_path):
    body, _, _ = rendered
    dash = json.loads((DOCS / "grafana-nomade.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 9
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": f"nomade:panel{i}", "expr": e.replace("$cluster", ".*")} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "panels.rules.json"
    path.write_text(json.dumps(rules))                   # JSON is YAML: promtool parses every query
    proc = subprocess.run([promtool_or_skip(), "check", "rules", str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()
    used = {n for e in exprs for n in re.findall(r"\bnomade_[a-z0-9_]+", e)}
    exported = {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", body.decode(), re.M)}
    documented = (DOCS / "metrics.md").read_text()
    assert used <= exported, used - exported
    assert all(f"`{n}`" in documented for n in used)
    from nomade.web.metrics_endpoint import _collector_name as metric_endpoint_name
    from_collectors = {metric_endpoint_name(m.metric).name for m in FIXTURE_METRICS}
    own = {n for n in exported if n not in from_collectors and n.rsplit("_total", 1)[0] not in from_collectors}
    assert "nomade_collector_up" in own and "nomade_disk_used_ratio" in own
    assert all(f"`{n}`" in documented for n in own), "a nomade-own family is missing from docs/metrics.md"
