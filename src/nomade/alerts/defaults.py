"""The shipped default rules (docs/alerts.md "Default rules"), built from the ``[alerts]``
settings and checked like any rule file's. Each can be switched off by name
(``alerts.disabled_rules``) or replaced by a rule of the same name in a rule file."""

from typing import Any, Dict, List

from ..risk_scale import CUTOFFS
from .rules import Rule, check_rule

DAY = 86400.0
HIGH_CUTOFF = CUTOFFS[1]      # lower bound of HIGH on the one risk scale


def _clear_below(threshold: float, margin: float) -> float:
    return threshold - margin


def default_tables(cfg: Any) -> List[Dict[str, Any]]:
    """The default rules as ``[[rule]]`` tables (what a rule file would say)."""
    dw, dc = cfg.get("alerts.disk_warning_percent"), cfg.get("alerts.disk_critical_percent")
    warn_s = cfg.get("alerts.derivatives.warning_days") * DAY
    crit_s = cfg.get("alerts.derivatives.critical_hours") * 3600.0
    window = cfg.get("alerts.derivatives.window_hours") * 3600.0
    gpu_t = cfg.get("alerts.gpu_temp_warning")
    tables: List[Dict[str, Any]] = []
    for what, used, total in (("disk", "disk.used_bytes", "disk.size_bytes"),
                              ("inodes", "disk.inodes_used", "disk.inodes_total")):
        noun = "full" if what == "disk" else "of its inodes used"
        tables.append(dict(
            name=f"{what}_full", metric=used, divide_by=total, scale=100.0, unless="disk.read_only",
            levels={"warning": dw, "critical": dc}, clear=_clear_below(dw, 2.0), unit="percent",
            key_labels=["mount"], summary="{mount} {value_words} " + noun + " on {where}"))
        tables.append(dict(
            name=f"{what}_fill", metric=used, measure="ttl", limit_metric=total, op="<",
            unless="disk.read_only", levels={"warning": warn_s, "critical": crit_s},
            clear=warn_s * 1.25, window=window, unit="seconds", key_labels=["mount"],
            summary="{mount} {percent} " + noun + ", " + ("full" if what == "disk" else "out of inodes")
                    + " in about {value_words} {pace} on {where}"))
    tables += [
        dict(name="quota_near_limit", metric="quota.used_bytes", divide_by="quota.hard_bytes", scale=100.0,
             threshold=cfg.get("alerts.quota_percent"), clear=cfg.get("alerts.quota_percent") - 2.0,
             unit="percent", summary="{kind} {name} uses {value_words} of its quota on {mount}"),
        dict(name="node_down", metric="nodes.state", labels={"state": "~(down|drain|fail)"}, op=">=",
             threshold=1.0, key_labels=["node"], summary="node {node} {state}: {reason}"),
        dict(name="job_pending_long", metric="queue.wait_max_s", unit="seconds",
             threshold=cfg.get("alerts.queue_stuck_days") * DAY,
             summary="a job has been pending for {value_words} on {cluster}"),
        dict(name="slurm_daemon_down", metric="slurm.up", labels={"daemon": "~^(slurmctld|slurmdbd)$"},
             op="<", threshold=1.0, severity="critical", key_labels=["daemon"], **{"for": "1m"},
             summary="{daemon} does not answer on {cluster}"),
        dict(name="license_server_down", metric="license.server_up", op="<", threshold=1.0,
             severity="critical", summary="license server {server} ({type}) is down"),
        dict(name="license_vendor_down", metric="license.vendor_up", op="<", threshold=1.0,
             severity="critical", summary="license vendor daemon {vendor} on {server} is down"),
        dict(name="license_expiring", metric="license.expires_ts", measure="until", op="<",
             threshold=cfg.get("alerts.license_expiry_days") * DAY, unit="seconds",
             summary="license {feature} ({vendor}, {server}) expires in about {value_words}"),
        dict(name="licenses_exhausted", metric="license.in_use", divide_by="license.issued", scale=100.0,
             op=">=", threshold=100.0, clear=95.0, unit="percent", **{"for": "5m"},
             summary="all {feature} licenses in use ({vendor}, {server})"),
        dict(name="gpu_temperature", metric="gpu.temp_c", levels={"warning": gpu_t, "critical": gpu_t + 10.0},
             clear=gpu_t - 3.0, unit="celsius", key_labels=["uuid"], **{"for": "2m"},
             summary="GPU {gpu} on {host} at {value_words}"),
        dict(name="gpu_ecc_errors", metric="gpu.ecc_errors", threshold=0.0, severity="critical",
             unit="count", key_labels=["uuid"],
             summary="GPU {gpu} on {host}: {value_words} uncorrected ECC errors"),
        dict(name="gpu_xid", metric="gpu.xid", op=">=", threshold=0.0, severity="critical",
             send_resolved=False, key_labels=["uuid"], summary="GPU {uuid} on {host}: XID error {value_words}"),
        dict(name="nfs_retransmissions", metric="nfs.retrans_per_s", labels={"op": "all"},
             threshold=cfg.get("alerts.nfs_retrans_per_s"), unit="per_s", **{"for": "5m"},
             summary="NFS {mount} from {server}: {value_words} retransmissions on {host}"),
        dict(name="nfs_latency_accelerating", metric="nfs.rtt_ms", labels={"op": "all"}, measure="accel",
             trend="accelerating", threshold=0.0, window="1h", **{"for": "10m"},
             summary="NFS {mount} from {server}: round trips slowing down faster and faster on {host}"),
        dict(name="queue_accelerating", metric="queue.pending", measure="accel", trend="accelerating",
             threshold=0.0, window="6h", severity="info", **{"for": "15m"},
             summary="pending jobs in {partition} growing faster and faster"),
        dict(name="memory_pressure", metric="node.psi_memory_full", labels={"window": "avg10"},
             threshold=cfg.get("alerts.memory_pressure_percent"), unit="percent", **{"for": "5m"},
             summary="{host}: all tasks stalled on memory {value_words} of the time"),
        dict(name="blackhole", kind="blackhole", severity="critical", threshold=0.0, window="2h",
             params={"min_jobs": 5, "factor": 3.0, "min_rate": 0.5, "usual_days": 30},
             summary="{kind} {name}: {value_words} of the jobs that ended in the last {window} failed "
                     "(usually {usual})"),
        dict(name="collector_down", kind="collector", severity="warning", threshold=0.0,
             summary="collector {collector} {problem}"),
        dict(name="high_risk_job", kind="high_risk", severity="info", send_resolved=False,
             threshold=cfg.get("ml.alerts.high_risk_threshold") or HIGH_CUTOFF,
             summary="job {job_id} of {user} scored {value_words} risk ({level}) at {stage}"),
        dict(name="early_warning", kind="early_warning", severity="warning", send_resolved=False,
             threshold=0.0, summary="{message}"),
        # written by `ingest sacct` (nomade.production.record_production_metrics): the last 30 days
        dict(name="model_precision_low", metric="model.precision", scale=100.0, op="<",
             threshold=100.0 * cfg.get("alerts.min_production_precision"),
             clear=100.0 * cfg.get("alerts.min_production_precision") + 5.0, unit="percent",
             key_labels=["stage"], severity="warning",
             summary="only {value_words} of the jobs warned at {stage} in the last 30 days failed"),
        dict(name="model_calibration_drift", metric="model.calibration_gap", scale=100.0,
             threshold=100.0 * cfg.get("alerts.max_calibration_gap"),
             clear=100.0 * cfg.get("alerts.max_calibration_gap") - 2.0, unit="percent",
             key_labels=["stage"], severity="warning",
             summary="{stage} risks are off by up to {value_words} points from what happened (last 30 days)"),
        # written by `nomade similarity --drift --record` (nomade.behaviour.drift)
        dict(name="behaviour_drift", metric="behaviour.drift", threshold=cfg.get("behaviour.drift_threshold"),
             key_labels=["feature"], severity="info",
             summary="how jobs run has drifted from the training window: {feature} (stability index {value_words})"),
        # the scratch and coverage collectors (docs/monitoring.md)
        dict(name="scratch_leftover", metric="scratch.leftover_bytes", labels={"user": "~^$"},
             threshold=cfg.get("alerts.scratch_leftover_gb") * 1e9, unit="bytes", severity="info",
             summary="{host}: jobs that ended recently left {value_words} in node-local scratch"),
        dict(name="recorder_coverage_low", metric="recorder.coverage_ratio", scale=100.0, op="<",
             threshold=100.0 * cfg.get("alerts.min_recorder_coverage"),
             clear=100.0 * cfg.get("alerts.min_recorder_coverage") + 5.0, unit="percent",
             severity="warning",
             summary="only {value_words} of the jobs that ended recently on {cluster} have recorder samples"),
    ]
    retrain = cfg.get("model.retrain_interval_days")
    if retrain and retrain > 0:
        tables.append(dict(name="model_stale", kind="model_age", severity="info", threshold=retrain * DAY,
                           unit="seconds", summary="model {version} is {value_words} old (retrain every {every})"))
    return tables


def default_rules(cfg: Any) -> List[Rule]:
    out = []
    for i, table in enumerate(default_tables(cfg)):
        rule = check_rule(table, "default rules", i)
        if rule is not None:
            out.append(rule)
    return out
