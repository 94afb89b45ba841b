"""``nomade status``: the one-screen overview of what the collectors wrote (nomade.analysis.views).
Text from the cluster (drain reasons, labels, collector messages) is shown with control
characters escaped: a reason with a newline or a terminal escape cannot redraw the screen."""

import time
from typing import List, Optional

import click

from ..analysis.words import printable as _safe
from .context import AppContext, echo_json, pass_app


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Redraw every SECONDS until interrupted.")
@click.option("--hours", type=click.FloatRange(min=0.1), default=72.0, show_default=True,
              help="Window of samples the filesystem trends are fitted over.")
@click.option("--cluster", default=None,
              help="Cluster whose metrics to read (default: the one `nomade collect` stores under).")
@pass_app
def status(app: AppContext, as_json: bool, watch: Optional[float], hours: float,
           cluster: Optional[str]) -> None:
    """Filesystems, queue, nodes, pressure, GPUs, licenses and collector health at a glance."""
    from ..analysis.views import Analysis
    from ..monitor import cluster_name
    cluster = cluster or cluster_name(app.config)

    while True:
        with app.store(readonly=True) as store:
            rep = Analysis(store, cluster=cluster, hours=hours).status()
        if as_json:
            echo_json(rep.as_dict())
        else:
            if watch:
                click.clear()
            click.echo("\n".join(render(rep)))
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


def render(rep) -> List[str]:
    from ..analysis.words import bar, human_duration
    out = [f"nomade status{' - ' + rep.cluster if rep.cluster else ''} "
           f"({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rep.ts))})"]
    for title, name, lines in (("Filesystems", "filesystems", _filesystems),
                               ("Queue", "queue", _queue), ("Nodes", "nodes", _nodes),
                               ("Pressure (PSI, % of time stalled)", "pressure", _aggregates),
                               ("GPUs", "gpus", _aggregates), ("Licenses", "licenses", _licenses),
                               ("Collectors", "collectors", _collectors)):
        value = getattr(rep, name)
        out.append("")
        if value is None:
            out.append(f"{title}: {rep.omitted.get(name, 'no data')}")
            continue
        out.append(title)
        out += ["  " + line for line in lines(value, rep, bar, human_duration)]
    return out


def _filesystems(fss, rep, bar, human_duration) -> List[str]:
    return [f"{bar(f.used_percent / 100.0)} {_safe(f.sentence)}" for f in fss]


def _queue(rows, rep, bar, human_duration) -> List[str]:
    if not rows:
        return ["empty: no job pending or running"]
    w = max(len(r["partition"]) for r in rows)
    return [f"{'partition':<{w}}  {'pending':>8}  {'running':>8}"] + [
        f"{r['partition']:<{w}}  {r['pending']:>8}  {r['running']:>8}" for r in rows]


def _nodes(ns, rep, bar, human_duration) -> List[str]:
    from ..analysis.views import NODE_LIST_MAX
    lines = [f"{ns.total} nodes: " + ", ".join(f"{n} {_safe(s)}" for s, n in ns.by_state.items())]
    for n in ns.flagged[:NODE_LIST_MAX]:
        who = " ".join(x for x in (n.reason_user, n.reason_time) if x)
        lines.append(f"{_safe(n.node):<12} {_safe(n.state):<10} {_safe(n.reason)}"
                     + (f" ({_safe(who)})" if who else ""))
    if len(ns.flagged) > NODE_LIST_MAX:
        lines.append(f"... and {len(ns.flagged) - NODE_LIST_MAX} more")
    return lines


def _aggregates(rows, rep, bar, human_duration) -> List[str]:
    from ..analysis.words import human_bytes
    w = max(len(a.metric) for a in rows)

    def num(metric: str, v: float) -> str:
        return f"{human_bytes(v):>8}" if metric.endswith("_bytes") else f"{v:8.2f}"
    return [f"{a.metric:<{w}}  mean {num(a.metric, a.mean)}  max {num(a.metric, a.max)} "
            f"({_safe(a.max_at)}) over {a.n}" for a in rows]


def _licenses(lic, rep, bar, human_duration) -> List[str]:
    lines = [f"server {_safe(x['server'])} ({_safe(x['type'])}) DOWN" for x in lic["servers"] if not x["up"]]
    for f in lic["features"]:
        used = "?" if f["in_use"] is None else f"{f['in_use']:g}"
        issued = "?" if f["issued"] is None else f"{f['issued']:g}"
        queued = f", {f['queued']:g} queued" if f["queued"] else ""
        lines.append(f"{_safe(f['feature']):<16} {used:>5} of {issued:<5} in use{queued}  ({_safe(f['server'])})")
    return lines


def _collectors(health, rep, bar, human_duration) -> List[str]:
    lines = []
    for name, h in health.items():
        age = human_duration(max(rep.ts - h["last_run"], 0.0))
        state, msg = {"ok": "ok", "skipped": "skipped"}.get(h.get("state"), "FAILED"), h["message"]
        lines.append(f"{_safe(name):<12} {state:<8} last run {age} ago" + (f": {_safe(msg)}" if msg else ""))
    return lines
