"""``nomade collect``: the monitoring daemon (``--once`` for one pass of every collector)."""

from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


def _names(text: Optional[str]):
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


@click.command("collect")
@click.option("--once", is_flag=True, help="Run every selected collector once, store what it gives, exit.")
@click.option("--interval", "interval_s", type=float, default=None, metavar="S",
              help="Run every collector every S seconds (else each one's [collectors.<name>] interval_s).")
@click.option("-C", "--collectors", "only", default=None, metavar="NAMES",
              help="Comma-separated collectors to run (e.g. disk,queue); else monitoring.collectors, "
                   "else every enabled one.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the runs as JSON.")
@click.option("--no-alerts", is_flag=True, help="Do not evaluate alert rules after each cycle.")
@pass_app
def collect(app: AppContext, once: bool, interval_s: Optional[float], only: Optional[str], as_json: bool,
            no_alerts: bool) -> None:
    """Collect monitoring metrics (disks, queue, nodes, ...) into the store.

    Each collector runs at its interval; one that fails or whose source is absent here is
    recorded (see `nomade syscheck`) and never stops the others. After each cycle the alert
    rules are evaluated and their notifications sent (alerts.enabled; docs/alerts.md). SIGHUP
    reloads the configuration; SIGTERM or Ctrl-C stops after the running collector.
    """
    from ..collectors.registry import problems, registry
    from ..errors import ConfigError
    from ..monitor import Monitor, Signals

    if interval_s is not None and not interval_s > 0:
        raise ConfigError(f"--interval {interval_s:g}: must be a positive number of seconds")
    app.lenient_config("nomade collect")   # a typo keeps its default and is logged; the daemon runs
    found = registry()
    for line in problems():
        click.echo(f"nomade collect: {line}", err=True)
    store = app.store()
    try:
        log = lambda line: click.echo(f"nomade collect: {line}", err=True)  # noqa: E731
        engine = None
        if app.config.get("alerts.enabled") and not no_alerts:
            from ..alerts.engine import Engine
            engine = Engine(app.config, store, log=log)
            engine.channels()               # a bad channel setting stops here, not in the loop
        monitor = Monitor(app.config, found, store, only=_names(only), interval_s=interval_s,
                          log=log, after_cycle=engine.after_cycle if engine else None)
        if engine is not None:
            engine.cluster = monitor.cluster    # the cluster the cycle's metrics are stored under
        if once:
            _report(monitor.cycle(), as_json)
            return
        signals = Signals()

        def reload():
            cfg = _reload(app)
            if engine is not None:
                engine.reconfigure(cfg)         # a bad rule file: the old config and rules stay
            return cfg
        with _signal_handlers(signals):
            monitor.run(signals, reload=reload)
    finally:
        store.close()


def _reload(app: AppContext):
    from ..config import load_config
    cfg = load_config(app.config_path, app.overrides, lenient=True)
    for line in cfg.problems:
        click.echo(f"nomade collect: config problem, default used: {line}", err=True)
    return cfg


def _report(results, as_json: bool) -> None:
    if as_json:
        echo_json([{"name": r.name, "state": r.state, "message": r.message, "metrics": r.n_metrics,
                    "duration_s": round(r.duration_s, 4)} for r in results])
        return
    for r in results:
        detail = f"{r.n_metrics} metrics" if r.ok else r.message
        click.echo(f"{r.name}: {r.state}: {detail} ({r.duration_s:.2f} s)")


class _signal_handlers:
    """SIGTERM/SIGINT set ``stop``, SIGHUP sets ``reload``; the previous handlers come back after."""

    def __init__(self, signals):
        self.signals = signals
        self.saved = {}

    def __enter__(self):
        import signal

        def stop(signum, frame):
            self.signals.stop = True

        def reload(signum, frame):
            self.signals.reload = True

        for sig, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload)):
            self.saved[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        import signal
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
