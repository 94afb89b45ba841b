"""Every setting nomade has, declared once: section, key, type, default, help.

Top-level keys (section "") are overridden by ``NOMADE_<KEY>``; the others by
``NOMADE_<SECTION>_<KEY>`` (a dotted section's dots become underscores:
``NOMADE_COLLECTORS_DISK_FILESYSTEMS``). A default of None means "derived at load" (documented
in help). Add new settings here only; docs/configuration.md is checked against this list by the
tests.

Types: str, int, float, bool, ``list`` (a list of strings; from the environment comma-separated
text) and ``dict`` (a table of string keys to strings, numbers or booleans; from the environment
``key=value,key=value``). Sections may be dotted (``collectors.disk`` is the TOML table
``[collectors.disk]``). Collectors declare theirs with ``collector_settings`` (docs/monitoring.md).
"""

from dataclasses import dataclass
from typing import Any, Tuple, Union


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    type: type
    default: Any
    help: str

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def env_var(self) -> str:
        parts = ["NOMADE"] + ([self.section.replace(".", "_")] if self.section else []) + [self.key]
        return "_".join(p.upper() for p in parts)

    @property
    def type_name(self) -> str:
        return {list: "list of strings", dict: "table"}.get(self.type, self.type.__name__)


def collector_settings(name: str, *extra: Union[Setting, tuple], enabled: bool = True,
                       interval_s: float = 60.0, required: bool = False) -> Tuple[Setting, ...]:
    """The settings of collector ``name``, section ``collectors.<name>``: ``enabled``,
    ``interval_s`` and ``required`` (syscheck exits 1 when a required collector cannot run), then
    ``extra``: each a Setting or a (key, type, default, help) tuple, its section filled in.
    Used in SETTINGS as ``*collector_settings("disk", ("filesystems", list, ["/"], "..."),
    interval_s=300.0)``. For the brief's positional form, a bool and a number before the first
    extra are taken as enabled and interval_s."""
    section = f"collectors.{name}"
    items = list(extra)
    if items and isinstance(items[0], bool):
        enabled = items.pop(0)
    if items and isinstance(items[0], (int, float)) and not isinstance(items[0], bool):
        interval_s = float(items.pop(0))
    out = [
        Setting(section, "enabled", bool, enabled, f"Run the {name} collector in `nomade collect`."),
        Setting(section, "interval_s", float, float(interval_s),
                f"Seconds between runs of the {name} collector."),
        Setting(section, "required", bool, required,
                f"`nomade syscheck` exits 1 when the {name} collector cannot run on this host."),
    ]
    for item in items:
        if isinstance(item, Setting):
            out.append(item if item.section == section else Setting(section, *_fields(item)))
        else:
            out.append(Setting(section, *item))
    return tuple(out)


def _fields(s: Setting) -> tuple:
    return (s.key, s.type, s.default, s.help)


SETTINGS: Tuple[Setting, ...] = (
    # ------------------------------------------------------------------ general
    Setting("", "data_dir", str, None,
            "Where the store, model registry, reports and spool live. Default /var/lib/nomade for "
            "root, else $XDG_DATA_HOME/nomade (~/.local/share/nomade). Also --data-dir."),
    Setting("", "cluster", str, "",
            "Cluster name used for jobs ingested from this site's Slurm; empty = the name sacct reports."),
    # ------------------------------------------------------------------ store
    Setting("store", "path", str, "",
            "SQLite store file; empty = <data_dir>/nomade.db."),
    Setting("store", "url", str, "",
            "The store as a URL; empty = the SQLite file of store.path. postgresql://ROLE@HOST/DB "
            "(libpq URL; a Unix socket as ?host=/run/postgresql) selects PostgreSQL (the postgres "
            "extra); the password comes from ~/.pgpass, PGPASSFILE or PGPASSWORD, never the URL. "
            "sqlite:///path = a SQLite file."),
    Setting("store", "busy_timeout_ms", int, 10000,
            "How long a writer waits for a lock held by another process before giving up (ms)."),
    # ------------------------------------------------------------------ slurm
    Setting("slurm", "sacct", str, "sacct", "The sacct executable."),
    Setting("slurm", "squeue", str, "squeue", "The squeue executable."),
    Setting("slurm", "scontrol", str, "scontrol", "The scontrol executable."),
    Setting("slurm", "command_timeout_s", float, 120.0,
            "Timeout for one Slurm command; it is killed (with its process group) after this."),
    Setting("slurm", "overlap_s", int, 3600,
            "Incremental `ingest sacct` re-reads this many seconds before the stored high-water mark, "
            "so jobs that changed state late are not missed."),
    Setting("slurm", "initial_lookback_days", int, 7,
            "On the first `ingest sacct` (no high-water mark yet), how far back to read."),
    # ------------------------------------------------------------------ ingest
    Setting("ingest", "batch_size", int, 5000, "Records written per transaction."),
    # ------------------------------------------------------------------ model
    Setting("model", "bundle", str, "",
            "Model bundle used for scoring; empty = the registry's current bundle, else the shipped default."),
    Setting("model", "registry_dir", str, "",
            "Model registry directory; empty = <data_dir>/models."),
    Setting("model", "lua_path", str, "",
            "Where job_submit.lua reads its model (its MODEL_PATH, e.g. /etc/nomade/submit_model.lua): "
            "every promotion, rollback and history refresh publishes the bundle's submit_model.lua "
            "there atomically. Empty = do not publish (set it on the host that runs the timers)."),
    Setting("model", "alert_threshold", float, 0.0,
            "Risk at or above which users are warned; 0 = the threshold stored in the bundle's manifest "
            "(chosen by model.alert_budget and model.min_precision when it was trained)."),
    Setting("model", "alert_budget", float, 0.10,
            "Training chooses the alert threshold on the stack window as the lowest one that warns "
            "at most this share of jobs (0 = no budget: the best-F1 threshold), raised if needed to "
            "keep model.min_precision. Replaces train.alert_budget, which is still honoured when "
            "set and this is not."),
    Setting("model", "min_precision", float, 0.5,
            "The alert threshold is raised until at least this share of the warned jobs on the "
            "stack window failed (0 = no floor); when no threshold reaches it nobody is warned "
            "(threshold 1.0) and the manifest says so."),
    Setting("model", "assumed_wait_s", float, 86400.0,
            "When the outcome of a job with no recorded end (SWF traces without wait times) counts "
            "as known to the history features: submit + runtime + this many seconds. Every feature "
            "path uses it (the full model, the Lua model, the neighbour and sequence bases); "
            "docs/evaluation.md shows its effect. A job with a recorded end time uses that instead."),
    Setting("model", "owner_cancel_is_failure", bool, False,
            "Count a job cancelled by its own owner as a failure. Off by default: owners cancel for "
            "many reasons that are not the job's fault (wrong input noticed, plans changed)."),
    # ------------------------------------------------------------------ train
    Setting("train", "window_days", int, 0,
            "Train on jobs submitted in the last N days; 0 = all history."),
    Setting("train", "min_jobs", int, 2000,
            "Fewest ended jobs needed before `nomade train` builds a site model."),
    Setting("train", "promote_tolerance", float, 0.01,
            "`train --publish` promotes a new bundle only if its PR-AUC is not lower than the current "
            "one's by more than this."),
    Setting("train", "seed", int, 7, "Random seed for training."),
    Setting("train", "stages", str, "submit,start",
            "Scoring stages to train an ensemble for (comma-separated: submit, start). The start "
            "stage feeds the Prolog; without it the Prolog scores with the submit-stage ensemble."),
    Setting("train", "models", str, "gbdt,lite,gnn,lstm,autoencoder",
            "Base models of the ensemble (comma-separated subset of gbdt, lite, gnn, lstm, "
            "autoencoder; lite = the Lua model's features and trees, uncalibrated)."),
    Setting("train", "folds", int, 4,
            "Rolling-origin folds of the evaluation that ends every `nomade train`; 0 = no evaluation "
            "(the manifest then has no metrics and the publish gate refuses the bundle; `nomade train "
            "--folds N` overrides it for one run)."),
    Setting("train", "calibration", str, "platt",
            "Calibration of the stacked ensemble: platt, isotonic, or auto (the lower Brier score on "
            "the second half of the stack window)."),
    Setting("train", "alert_budget", float, 0.0,
            "Deprecated: use model.alert_budget. When set (and model.alert_budget is not) it keeps "
            "its former meaning: at most this share of jobs flagged, 0 = the best-F1 threshold; "
            "model.min_precision applies too."),
    # ------------------------------------------------------------------ hooks
    Setting("hooks", "timeout_s", float, 3.0,
            "Wall-time bound for Prolog/Epilog/TaskProlog work; after it the hook gives up and exits 0."),
    Setting("hooks", "spool_dir", str, "",
            "Durable spool for hook records; empty = <data_dir>/spool/hooks."),
    Setting("hooks", "log_file", str, "",
            "Where hooks log (one line per event, with the job id); empty = syslog-style stderr."),
    Setting("hooks", "keep_days", int, 180,
            "`nomade ingest hooks` deletes hook records (start/end/mail) older than this many days "
            "from the store, and spool files abandoned half-written for a day; 0 = keep records "
            "forever. Scores stay."),
    Setting("hooks", "runtime_dir", str, "",
            "Node-local directory where the Prolog leaves each job's start-time risk for the "
            "TaskProlog (one file per job, readable by its owner); empty = /run/nomade/jobs."),
    Setting("hooks", "scorer", str, "",
            "Start-time scorer used by the Prolog: empty = the model bundle's ONNX ensemble; "
            "\"module:function\" = a site scorer returning (risk, reasons, version) for a request dict."),
    # ------------------------------------------------------------------ mail (MailProg wrapper)
    Setting("mail", "smtp_host", str, "",
            "SMTP server the MailProg wrapper sends through; empty = hand the mail to /usr/sbin/sendmail."),
    Setting("mail", "smtp_port", int, 25, "SMTP port (plain SMTP, no TLS: a local relay)."),
    Setting("mail", "from", str, "",
            "Sender address of job-end mail; empty = slurm@<this host>."),
    Setting("mail", "sendmail", str, "/usr/sbin/sendmail", "The sendmail executable (when no smtp_host)."),
    # ------------------------------------------------------------------ recorder
    Setting("recorder", "interval_s", float, 30.0, "Seconds between samples of each running job."),
    Setting("recorder", "spool_dir", str, "",
            "Node-local spool for samples; empty = <data_dir>/spool/samples."),
    Setting("recorder", "spool_max_mb", float, 64.0,
            "Spool size bound; past it the oldest segments are dropped (and counted)."),
    Setting("recorder", "fsync_interval_s", float, 60.0, "How often the spool is fsynced."),
    Setting("recorder", "notify_command", str, "",
            "Command run once per job when an early warning fires (argv split on spaces; no shell)."),
    # ------------------------------------------------------------------ privacy / why service
    Setting("privacy", "admin_group", str, "nomade-admins",
            "Unix group whose members see every job; others see only their own."),
    Setting("privacy", "socket", str, "/run/nomade/why.sock",
            "Unix socket of the local query service used by nomade-why for non-root users."),
    Setting("privacy", "max_per_uid", int, 2,
            "Connections (waiting or being answered) one uid may hold on the nomade-why service at "
            "once; more are answered \"busy, try again\", so one user cannot occupy every worker."),
    Setting("export", "secret_file", str, "/etc/nomade/export.secret",
            "The site's secret for `nomade export --anonymize` (keyed pseudonyms): a file of at least "
            "32 bytes, not readable by other users (e.g. `head -c 48 /dev/urandom > FILE; chmod 600 "
            "FILE`). Keep it: the same secret gives the same pseudonyms in every export."),
    # ------------------------------------------------------------------ web dashboard (nomade dashboard)
    Setting("web", "host", str, "127.0.0.1",
            "Address `nomade dashboard` listens on; the default serves this machine only."),
    Setting("web", "port", int, 8470, "Port `nomade dashboard` listens on."),
    Setting("web", "proxy_user_header", str, "",
            "Request header holding the user name set by a trusted reverse proxy (e.g. "
            "X-Forwarded-User); empty = identity only from per-user tokens."),
    Setting("web", "trusted_proxies", list, [],
            "Addresses whose proxy_user_header is believed; from any other address it is ignored."),
    Setting("web", "token_dir", str, "",
            "Directory of the users' token verifiers (`nomade dashboard token`), one file per uid "
            "owned by that user; empty = <data_dir>/web-tokens. Sites make it mode 1733."),
    Setting("web", "metrics_public", bool, True,
            "Serve /metrics without login (it carries no per-user labels)."),
    Setting("web", "page_size", int, 50, "Jobs per page on the Jobs pages."),
    Setting("web", "live_interval_s", float, 3.0,
            "Seconds between the live-update checks pages are told about (server-sent events)."),
    Setting("web", "network_max_jobs", int, 200000,
            "The Network page runs the behaviour analysis (in the background, at most every 10 "
            "minutes) only on stores of at most this many jobs; on bigger ones it places jobs by "
            "what they asked for. 0 = never."),
    # ---- /metrics and `nomade metrics` (docs/metrics.md)
    Setting("web", "metrics_user_labels", bool, False,
            "Also export series that name a user (license holders, per-user RPCs, fair share, "
            "user quotas) on /metrics; off by default: whoever scrapes sees no user names."),
    Setting("web", "metrics_max_age_s", float, 1800.0,
            "Collector series whose newest sample is older than this are left out of /metrics."),
    Setting("web", "metrics_window_h", float, 24.0,
            "Hours of submitted jobs counted by /metrics' nomade_jobs_by_risk_level."),
    # ------------------------------------------------------------------ behaviour (docs/behaviour.md)
    Setting("behaviour", "similarity_threshold", float, 0.7,
            "Two jobs are linked in the similarity network when their similarity is at least this."),
    Setting("behaviour", "similarity", str, "cosine",
            "How jobs are compared: cosine (of z-scored behaviour vectors) or simpson (Simpson's "
            "index on presence/absence: a feature is present when above the mean of all jobs)."),
    Setting("behaviour", "neighbours", int, 10, "Nearest neighbours searched per job."),
    Setting("behaviour", "permutations", int, 199,
            "Label shuffles of the permutation test of failure assortativity."),
    Setting("behaviour", "min_count", int, 20,
            "Smallest group reported: hotspots, regions, profiles shown to users, neighbourhood "
            "aggregates and matched pairs below it are not shown."),
    Setting("behaviour", "max_profiles", int, 8, "Most job profiles tried (chosen by BIC)."),
    Setting("behaviour", "exact_limit", int, 20000,
            "Up to this many jobs every job is compared with every other; above it by cells "
            "(an approximate inverted-file search)."),
    Setting("behaviour", "seed", int, 0, "Seed of every random choice of the analysis."),
    Setting("behaviour", "drift_days", float, 30.0, "Recent window compared for drift (days)."),
    Setting("behaviour", "train_days", float, 180.0,
            "Window before the recent one that drift is measured against (days)."),
    Setting("behaviour", "drift_threshold", float, 0.2,
            "Population stability index from which a feature counts as drifted."),
    Setting("behaviour", "anomaly_percentile", float, 1.0,
            "Jobs whose profile-mixture likelihood is below this percentile are anomalies."),
    Setting("behaviour", "recent_jobs", int, 50, "Jobs per user the per-dimension scores cover."),
    # ------------------------------------------------------------------ monitoring (nomade collect)
    Setting("monitoring", "raw_days", float, 7.0,
            "Days the collectors' raw samples are kept; older ones are folded into hourly averages."),
    Setting("monitoring", "rollup_days", float, 400.0,
            "Days the hourly averages of the collectors' metrics are kept."),
    Setting("monitoring", "collectors", list, [],
            "Collectors `nomade collect` runs (names); empty = every registered collector whose "
            "[collectors.<name>] enabled is true. `nomade collect -C` overrides it."),
    # Collectors append their block below, under a comment with the collector's name:
    #   # ---- collector: disk
    #   *collector_settings("disk", ("filesystems", list, ["/"], "Mount points to measure."),
    #                       interval_s=300.0),
    # ---- collectors: disk, nodestats, nfs, zfs
    *collector_settings(
        "disk",
        ("filesystems", list, ["/"], "Mount points (or paths) whose size, usage, inodes and "
         "read-only state are measured; each statvfs is time-bounded."),
        ("statvfs_timeout_s", float, 5.0, "Seconds a filesystem may take to answer statvfs "
         "before it is reported as not responding (disk.responding 0; a hung NFS mount)."),
        ("quotas", bool, True, "Report per-user and per-group quotas from `repquota -a -u -g -p` "
         "(package quota); nothing is reported where repquota is absent."),
        ("repquota_timeout_s", float, 60.0, "Seconds repquota may run."),
        ("ood_quota_file", str, "", "When set, write the Open OnDemand quota JSON file here "
         "(mode 0644: it lists every user's usage and limits, readable by all, as OnDemand "
         "needs); empty = not written."),
        interval_s=300.0),
    *collector_settings(
        "nodestats",
        ("exclude_devices", str, r"^(loop|ram|zram|fd|sr)\d+$", "Regular expression of block "
         "devices (names as in /proc/diskstats) left out of the disk statistics."),
        interval_s=60.0),
    *collector_settings(
        "nfs",
        ("ops", list, ["READ", "WRITE", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "OPEN",
                       "CLOSE", "COMMIT", "READDIR", "READDIRPLUS", "CREATE", "REMOVE", "RENAME"],
         "NFS operations reported one by one (ops/s, RTT, retransmissions); every operation "
         "counts in op=\"all\"."),
        interval_s=60.0),
    *collector_settings(
        "zfs",
        ("zpool", str, "", "The zpool executable; empty = found on PATH."),
        ("timeout_s", float, 30.0, "Seconds each zpool command may run."),
        interval_s=300.0),
    # ---- collectors: queue, nodes, slurm_health, licenses, gpu
    *collector_settings(
        "queue",
        ("stuck_after_h", float, 24.0, "Hours a job may pend before it counts in queue.stuck."),
        ("timeout_s", float, 30.0, "Seconds squeue may run."),
        interval_s=60.0),
    *collector_settings(
        "nodes",
        ("hwmon", bool, True, "Also report this host's temperatures from /sys/class/hwmon."),
        ("timeout_s", float, 30.0, "Seconds sinfo may run."),
        ("phase_s", float, 0.0, "Seconds the daemon waits before the first run (with slurm_health's "
         "phase_s, keeps sinfo and sdiag out of the same cycle)."),
        interval_s=120.0),
    *collector_settings(
        "slurm_health",
        ("timeout_s", float, 10.0, "Seconds sdiag and sshare may each run."),
        ("ping_timeout_s", float, 5.0, "Seconds each reachability check (scontrol ping, "
         "sacctmgr, munge/unmunge) may take before the daemon counts as down."),
        ("fairshare_interval_s", float, 600.0, "Seconds between fairshare readings (`sshare`, one "
         "more slurmctld RPC, in a cycle without sinfo); 0 = never."),
        ("phase_s", float, 60.0, "Seconds the daemon waits before the first run: 60 s out of step "
         "with the nodes collector, so a cycle costs slurmctld at most 3 RPCs."),
        interval_s=120.0),
    *collector_settings(
        "licenses",
        ("flexlm", list, [], "FlexLM servers as port@host (a redundant triad as "
         "port@a:port@b:port@c), queried with `lmutil lmstat -a -c`."),
        ("rlm", list, [], "RLM servers as port@host, queried with `rlmutil rlmstat -a -c`."),
        ("lmutil", str, "lmutil", "The lmutil executable (a name on PATH or a path)."),
        ("rlmutil", str, "rlmutil", "The rlmutil executable (a name on PATH or a path)."),
        ("timeout_s", float, 20.0, "Seconds one server may take to answer; then it is down."),
        interval_s=300.0),
    *collector_settings(
        "gpu",
        ("xid", bool, True, "Also report NVIDIA XID error events (gpu.xid) seen since the last cycle."),
        interval_s=30.0),
    # ---- collectors: scratch, coverage
    *collector_settings(
        "scratch",
        ("paths", list, [], "Directories scanned for stale data per user (never following "
         "symlinks, staying on each one's filesystem); empty = no scan."),
        ("stale_days", float, 30.0, "A file neither modified nor read (mtime, atime) for this "
         "many days is stale."),
        ("budget_s", float, 30.0, "Seconds one path's scan may take; past it the scan stops and "
         "says truncated (its counts are then lower bounds)."),
        ("max_entries", int, 1000000, "Directory entries one path's scan may look at."),
        ("epilog_paths", list, [], "Node-local scratch directories where the Epilog counts the "
         "files the job's user (SLURM_JOB_UID) still owns; %u = login, %U = uid, %j = job id. "
         "Empty = no check."),
        ("epilog_budget_s", float, 0.5, "Seconds the Epilog's check may take over all "
         "epilog_paths (at most a third of hooks.timeout_s)."),
        ("epilog_max_entries", int, 20000, "Directory entries the Epilog's check may look at."),
        ("leftover_window_h", float, 24.0, "Hours of Epilog checks (of ended jobs) the "
         "collector turns into scratch.leftover_* metrics."),
        interval_s=3600.0),
    *collector_settings(
        "coverage",
        ("window_h", float, 24.0, "Hours of ended jobs whose recorder coverage is measured."),
        ("min_jobs", int, 20, "Fewest ended jobs for recorder.coverage_ratio to be given."),
        ("min_runtime_s", float, 60.0, "Jobs that ran shorter than this are not counted (the "
         "recorder may not have sampled them)."),
        interval_s=900.0),
    # ---- alerts: engine and default rules (docs/alerts.md)
    Setting("alerts", "enabled", bool, True,
            "Evaluate alert rules after each `nomade collect` cycle and each prediction ingest."),
    Setting("alerts", "rule_files", list, [],
            "TOML files of [[rule]] tables; a rule named like a default one replaces it."),
    Setting("alerts", "disabled_rules", list, [], "Default rules switched off, by name."),
    Setting("alerts", "disk_warning_percent", float, 85.0, "Filesystem (and inode) use that warns."),
    Setting("alerts", "disk_critical_percent", float, 95.0, "Filesystem (and inode) use that is critical."),
    Setting("alerts", "quota_percent", float, 90.0, "A user's or group's quota use (of the hard, else soft limit) that warns."),
    Setting("alerts", "queue_stuck_days", float, 3.0, "A job pending longer than this many days warns."),
    Setting("alerts", "gpu_temp_warning", float, 85.0, "GPU temperature (°C) that warns."),
    Setting("alerts", "license_expiry_days", float, 14.0, "A license expiring within this many days warns."),
    Setting("alerts", "memory_pressure_percent", float, 20.0,
            "Share of time all tasks of a node stall on memory (PSI full, avg10) that warns."),
    Setting("alerts", "nfs_retrans_per_s", float, 1.0, "NFS retransmissions per second on a mount that warn."),
    Setting("alerts", "min_recorder_coverage", float, 0.8,
            "Rule recorder_coverage_low: warns when fewer than this share of the recently ended jobs "
            "have recorder samples (recorder.coverage_ratio)."),
    Setting("alerts", "scratch_leftover_gb", float, 10.0,
            "Rule scratch_leftover: a node where ended jobs left more than this many GB in node-local "
            "scratch (scratch.leftover_bytes; info)."),
    Setting("alerts", "min_production_precision", float, 0.5,
            "Rule model_precision_low: warns when fewer than this share of the jobs warned (per stage, "
            "last 30 days, `nomade models performance`) failed."),
    Setting("alerts", "max_calibration_gap", float, 0.15,
            "Rule model_calibration_drift: warns when, at some risk level with >= 30 ended jobs, the "
            "mean predicted risk and the observed failure rate differ by more than this."),
    Setting("alerts", "repeat_interval", dict, {"info": "24h", "warning": "4h", "critical": "1h"},
            "Per severity: how often a firing alert nobody acknowledged is sent again."),
    Setting("alerts", "cooldown", dict, {"info": "1h", "warning": "15m", "critical": "5m"},
            "Per severity: the least time between two notifications of one alert (a resolved "
            "alert that fires again within it waits)."),
    Setting("alerts", "notify_job_owner", bool, False,
            "Also send a job's early warning to its owner (email channel, user@owner_email_domain)."),
    Setting("alerts", "owner_email_domain", str, "",
            "Domain of job owners' addresses; empty = the bare user name (local delivery)."),
    Setting("alerts", "event_window_h", float, 24.0,
            "Prediction alerts (a high-risk score, an early warning) are raised for what arrived "
            "in the last this-many hours, then resolve without a message."),
    Setting("alerts.derivatives", "window_hours", float, 72.0,
            "Hours of samples the disk and inode projections fit."),
    Setting("alerts.derivatives", "warning_days", float, 3.0,
            "A filesystem projected full within this many days warns."),
    Setting("alerts.derivatives", "critical_hours", float, 24.0,
            "A filesystem projected full within this many hours is critical."),
    Setting("ml.alerts", "high_risk_threshold", float, 0.0,
            "Risk at or above which a scored job raises an alert; 0 = the risk scale's HIGH cut-off (0.6)."),
    Setting("model", "retrain_interval_days", float, 30.0,
            "A current model older than this many days raises the model_stale alert; 0 = never."),
    # ---- alerts: channels
    Setting("alerts", "email_enabled", bool, False, "Send alerts by email (SMTP) to alerts.email_to."),
    Setting("alerts", "email_to", list, [], "Addresses that receive alert email."),
    Setting("alerts", "email_from", str, "",
            "Sender address of alert email; empty = nomade@<this host's name>."),
    Setting("alerts", "smtp_host", str, "localhost", "SMTP server alert email is sent through."),
    Setting("alerts", "smtp_port", int, 587, "SMTP port (587: submission with STARTTLS)."),
    Setting("alerts", "smtp_starttls", bool, True,
            "Switch the SMTP connection to TLS with STARTTLS (the server's certificate is verified); "
            "false = plain SMTP, for a local relay."),
    Setting("alerts", "smtp_user", str, "",
            "SMTP AUTH user; empty = no AUTH. The password comes from alerts.smtp_password_file or "
            "the environment variable NOMADE_ALERTS_SMTP_PASSWORD, never from the config file."),
    Setting("alerts", "smtp_password_file", str, "",
            "File holding the SMTP password (first line); it must not be readable by others "
            "(chmod 600), else nomade refuses it."),
    Setting("alerts", "slack_enabled", bool, False, "Send alerts to the Slack incoming webhook alerts.slack_webhook."),
    Setting("alerts", "slack_webhook", str, "",
            "Slack incoming-webhook URL (https://hooks.slack.com/services/...); a secret: keep the "
            "config file private."),
    Setting("alerts", "webhook_urls", list, [],
            "URLs that receive each alert group as a JSON POST (Alertmanager-webhook compatible; "
            "docs/alerts.md \"Channels\"); empty = none."),
    Setting("alerts", "alertmanager_url", str, "",
            "Base URL of an existing Alertmanager (http://am:9093) that alerts are forwarded to "
            "through its v2 API; empty = none."),
    Setting("alerts", "alertmanager_ttl_s", float, 86400.0,
            "A firing alert forwarded to Alertmanager carries endsAt = now + this; nomade sends it "
            "again at each repeat and with endsAt = now when it resolves. Keep it above the longest "
            "repeat interval."),
    Setting("alerts", "external_url", str, "",
            "URL of this site's nomade dashboard, sent as externalURL and generatorURL; empty = none."),
    Setting("alerts", "channel_timeout_s", float, 10.0, "Seconds one delivery attempt may take."),
    Setting("alerts", "delivery_attempts", int, 3,
            "Attempts per channel and alert group (with backoff) before it is kept as undelivered."),
)


def find(name: str) -> Setting:
    for s in SETTINGS:
        if s.name == name:
            return s
    raise KeyError(name)
