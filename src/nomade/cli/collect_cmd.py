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
@pass_app
def collect(app: AppContext, once: bool, interval_s: Optional[float], only: Optional[str], as_json: bool) -> None:
    """Collect monitoring metrics (disks, queue, nodes, ...) into the store.

    Each collector runs at its interval; one that fails or whose source is absent here is
    recorded (see `nomade syscheck`) and never stops the others. SIGHUP reloads the
    configuration; SIGTERM or Ctrl-C stops after the running collector.
    """
    from ..collectors.registry import problems, registry
    from ..errors import ConfigError
    from ..monitor import Monitor, Signals

    if interval_s is not None and not interval_s > 0:
        raise ConfigError(f"--interval {interval_s:g}: must be a positive number of seconds")
    found = registry()
    for line in problems():
        click.echo(f"nomade collect: {line}", err=True)
    store = app.store()
    try:
        monitor = Monitor(app.config, found, store, only=_names(only), interval_s=interval_s,
                          log=lambda line: click.echo(f"nomade collect: {line}", err=True))
        if once:
            _report(monitor.cycle(), as_json)
            return
        signals = Signals()
        with _signal_handlers(signals):
            monitor.run(signals, reload=lambda: _reload(app))
    finally:
        store.close()


def _reload(app: AppContext):
    from ..config import load_config
    return load_config(app.config_path, app.overrides)


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
