"""``nomade record``: the node recorder (a daemon on compute nodes; ``--once`` for one pass)."""

import json
from dataclasses import asdict
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


@click.command("record")
@click.option("--once", is_flag=True, help="Take one sample of every running job and exit.")
@click.option("--json", "as_json", is_flag=True,
              help="Print samples and warnings as JSON (with --once one object, else one line each).")
@click.option("--interval", "interval_s", type=float, default=None, metavar="S",
              help="Seconds between passes (else recorder.interval_s, default 30).")
@click.option("--spool-dir", default=None, metavar="DIR",
              help="Spool directory (else recorder.spool_dir, default <data_dir>/spool/samples).")
@click.option("--no-spool", is_flag=True, help="Do not write the spool (with --once: just look).")
@click.option("--warn-within", "warn_within_s", type=float, default=900.0, show_default=True, metavar="S",
              help="Warn when a job's memory is projected to reach its limit within S seconds.")
@click.option("--no-series", is_flag=True,
              help="Do not score running jobs' series with the bundle's series model.")
@click.option("--proc-root", default="/proc", hidden=True, help="Replay a captured /proc (tests).")
@click.option("--cgroup-root", default="/sys/fs/cgroup", hidden=True, help="Replay a captured cgroup tree.")
@pass_app
def record(app: AppContext, once: bool, as_json: bool, interval_s: Optional[float],
           spool_dir: Optional[str], no_spool: bool, warn_within_s: float, no_series: bool,
           proc_root: str, cgroup_root: str) -> None:
    """Sample running Slurm jobs' CPU, memory and I/O from cgroups and /proc into the spool.

    Jobs are found by searching the cgroup hierarchies (v1, v2 or hybrid) for job_<id>
    directories; without any, root scans /proc/*/environ for SLURM_JOB_ID. Load the spool into
    the store with `nomade ingest spool`. Stop the daemon with SIGTERM or Ctrl-C.
    """
    from pathlib import Path

    from ..errors import ConfigError
    from ..ingest.spool import local_cluster_name
    from ..recorder.daemon import Recorder, RecorderOptions
    from ..recorder.sampler import SamplerPaths
    from ..recorder.warning import WarningPolicy

    cfg = app.config
    interval = interval_s if interval_s is not None else cfg.get("recorder.interval_s")
    if interval <= 0:
        raise ConfigError(f"--interval {interval:g}: must be a positive number of seconds")
    opts = RecorderOptions(
        spool_dir=Path(spool_dir) if spool_dir else cfg.spool_dir("recorder"),
        interval_s=interval, spool_max_mb=cfg.get("recorder.spool_max_mb"),
        fsync_interval_s=cfg.get("recorder.fsync_interval_s"),
        notify_command=cfg.get("recorder.notify_command"),
        cluster=cfg.get("cluster") or local_cluster_name(),
        warning=WarningPolicy(threshold_s=warn_within_s),
        paths=SamplerPaths(proc=Path(proc_root), cgroup=Path(cgroup_root)))
    rec = Recorder(opts, None if no_series else _series_scorer(cfg))
    if no_spool:
        rec.spool.write = lambda records: 0
    else:
        rec.spool.acquire()
    if once:
        result = rec.run_once()
        rec.spool.close()
        if as_json:
            echo_json({"samples": [asdict(s) for s in result.samples],
                       "events": [e.to_record() for e in result.events],
                       "seconds": round(result.seconds, 4), "spool": rec.spool.status()})
        else:
            _print_table(result)
        return

    def on_pass(result) -> None:
        if as_json:
            for s in result.samples:
                click.echo(json.dumps(asdict(s), sort_keys=True))
            for e in result.events:
                click.echo(json.dumps(e.to_record(), sort_keys=True))
        for e in result.events:
            click.echo(f"nomade record: warning: {e.detail.get('message', e.kind)}", err=True)

    rec.install_signal_handlers()
    click.echo(f"nomade record: every {interval:g} s -> {opts.spool_dir}", err=True)
    passes = rec.run(on_pass)
    click.echo(f"nomade record: stopped after {passes} passes", err=True)


def _series_scorer(cfg):
    """The bundle's series model, or None (no bundle with one yet: said once on stderr)."""
    from ..errors import ModelError

    try:
        from ..scoring.series import load_series_scorer
        scorer = load_series_scorer(cfg)
    except (ModelError, ImportError) as exc:
        click.echo(f"nomade record: no series scoring: {exc}", err=True)
        return None
    if scorer is None:
        click.echo("nomade record: the model bundle has no series model yet; only the memory "
                   "projection warns", err=True)
    return scorer


def _print_table(result) -> None:
    if not result.samples:
        click.echo("no running jobs found on this node")
    click.echo(f"{'job':>10} {'procs':>5} {'cpu_s':>9} {'eff':>5} {'rss_MiB':>8} {'cg_MiB':>8} "
               f"{'limit':>8} {'wr_local':>10} {'wr_net':>10} {'wr_tmpfs':>10}")
    for s in result.samples:
        click.echo(f"{s.job_id:>10} {s.extra.get('nprocs', 0):>5} {_f(s.cpu_time_s):>9} "
                   f"{_f(s.cpu_eff, 2):>5} {_f(s.rss_mb):>8} {_f(s.cg_mem_mb):>8} "
                   f"{_f(s.cg_mem_limit_mb):>8} {s.write_local_bytes or 0:>10} "
                   f"{s.write_network_bytes or 0:>10} {s.extra.get('write_tmpfs_bytes', 0):>10}")
    for e in result.events:
        click.echo(f"warning: {e.detail.get('message', e.kind)}")


def _f(v, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"
