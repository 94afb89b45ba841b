"""``nomade queue``, ``nomade nodes``, ``nomade licenses``: one section of `nomade status` in full,
from what `nomade collect` stored (nomade.analysis.views). Cluster text is shown escaped."""

import time
from typing import Callable, List, Optional

import click

from ..analysis.words import printable as _safe
from .context import AppContext, echo_json, pass_app

_CLUSTER = click.option("--cluster", default=None,
                        help="Cluster whose metrics to read (default: the one `nomade collect` stores under).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _show(app: AppContext, cluster: Optional[str], as_json: bool, section: str, collector: str,
          lines: Callable[[object], List[str]]) -> None:
    from dataclasses import asdict, is_dataclass

    from ..analysis.views import Analysis
    from ..monitor import cluster_name
    with app.store(readonly=True) as store:
        value = getattr(Analysis(store, cluster=cluster or cluster_name(app.config)), section)()
    if as_json:
        echo_json(asdict(value) if is_dataclass(value) else value)
    elif value is None:
        click.echo(f"no {collector} metrics yet: enable [collectors.{collector}] and run `nomade collect`")
    else:
        click.echo("\n".join(lines(value)))


@click.command("queue")
@_CLUSTER
@_JSON
@pass_app
def queue(app: AppContext, cluster: Optional[str], as_json: bool) -> None:
    """Pending and running jobs per partition, why jobs wait, and how long."""
    _show(app, cluster, as_json, "queue", "queue", _queue_lines)


@click.command("nodes")
@_CLUSTER
@_JSON
@pass_app
def nodes(app: AppContext, cluster: Optional[str], as_json: bool) -> None:
    """Node states, and every drained, down or failing node with its reason, who and when."""
    _show(app, cluster, as_json, "nodes", "nodes", _node_lines)


@click.command("licenses")
@_CLUSTER
@_JSON
@pass_app
def licenses(app: AppContext, cluster: Optional[str], as_json: bool) -> None:
    """License servers (up or down) and each feature: in use of issued, queued users, expiry."""
    _show(app, cluster, as_json, "licenses", "licenses", _license_lines)


def _queue_lines(q) -> List[str]:
    from ..analysis.words import human_duration
    parts = q["partitions"]
    w = max([len(_safe(r["partition"])) for r in parts] + [9])
    out = [f"{'partition':<{w}}  {'pending':>8}  {'running':>8}"]
    out += [f"{_safe(r['partition']):<{w}}  {r['pending']:>8}  {r['running']:>8}" for r in parts]
    waits = q["waits"]
    if waits:
        out.append("")
        out.append("waiting: median " + human_duration(waits.get("wait_p50_s")) + ", 90% under "
                   + human_duration(waits.get("wait_p90_s")) + ", longest " + human_duration(waits.get("wait_max_s"))
                   + f"; {int(waits.get('stuck', 0))} stuck")
    if q["reasons"]:
        out.append("")
        out.append("pending because")
        out += [f"  {r['jobs']:>6}  {_safe(r['reason'])} ({_safe(r['partition'])})" for r in q["reasons"]]
    return out


def _node_lines(ns) -> List[str]:
    out = [f"{ns.total} nodes: " + ", ".join(f"{n} {_safe(s)}" for s, n in ns.by_state.items())]
    for n in ns.flagged:
        who = " ".join(x for x in (n.reason_user, n.reason_time) if x)
        out.append(f"{_safe(n.node):<12} {_safe(n.state):<10} {_safe(n.reason)}" + (f" ({_safe(who)})" if who else ""))
    return out


def _license_lines(lic) -> List[str]:
    out = [f"server {_safe(x['server'])} ({_safe(x['type'])}) {'up' if x['up'] else 'DOWN'}" for x in lic["servers"]]
    for f in lic["features"]:
        used = "?" if f["in_use"] is None else f"{f['in_use']:g}"
        issued = "?" if f["issued"] is None else f"{f['issued']:g}"
        queued = f", {f['queued']:g} queued" if f["queued"] else ""
        exp = f.get("expires_ts")
        until = "permanent" if exp is None else "expires " + time.strftime("%Y-%m-%d", time.gmtime(exp))
        out.append(f"{_safe(f['feature']):<16} {used:>5} of {issued:<5} in use{queued}  {until}  ({_safe(f['server'])})")
    return out
