"""``nomade recommend``: what the data says would help a user's jobs (matched comparisons with
their evidence) and per-user scores of how well requests match use."""

from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.option("-u", "--user", default=None, metavar="NAME",
              help="This user's recommendations (yourself by default; others: admins only).")
@click.option("--cluster", default=None, metavar="NAME", help="Only jobs of this cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def recommend(app: AppContext, user: Optional[str], cluster: Optional[str], as_json: bool) -> None:
    """Recommendations from matched comparisons (how many pairs, success with and without, a 95 %
    interval; nothing below behaviour.min_count pairs) and scores per dimension (CPU, memory,
    time limit, I/O, GPU) with their trend. Admins without --user get the site-wide comparisons
    and every user's scores, lowest first.
    """
    from ..behaviour import one_blas_thread
    one_blas_thread()
    import numpy as np

    from ..behaviour import recommend as rec
    from ..behaviour import vectors
    from ..behaviour.analysis import Options
    from ..caller_access import listing_scope
    from ..whyservice.access import is_admin
    caller = current_caller()
    group = app.config.get("privacy.admin_group")
    scope = listing_scope(caller, group, [user] if user else ())
    if user is None and is_admin(caller, group):
        scope = scope.__class__((), None)       # admins without --user: site-wide
    opts = Options.from_config(app.config)
    with app.store(readonly=True) as store:
        b = vectors.load(store, cluster)
    kw = dict(threshold=opts.threshold, min_pairs=opts.min_count, recent=opts.recent_jobs, seed=opts.seed)
    if scope.owner is not None or user:
        if user is None:
            from ..behaviour.analysis import is_own
            rows = np.nonzero(is_own(b, np.arange(len(b)), scope.owner))[0]
            user = scope.owner.name or f"uid {scope.owner.uid}"
        else:
            rows = np.nonzero(np.array([u == user for u in b.user], dtype=bool))[0]
        res = rec.user_report(b, rows, user, **kw)
    else:
        res = rec.site_report(b, **kw)
    echo_json(res) if as_json else click.echo(format_recommend(res))


def _score(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_recommend(r) -> str:
    lines = []
    if "user" in r:
        lines.append(f"{r['user']}: {r['jobs']} ended jobs")
        lines += [f"  {c['sentence']}" for c in r["recommendations"]] or [
            "  no recommendation with enough matched jobs"]
        s = r["scores"]
        if s:
            lines.append("  scores (0..1, trend = newer half - older half): " + ", ".join(
                f"{d} {_score(v)} ({_score(s['trend'][d])})" for d, v in s["scores"].items()))
        return "\n".join(lines)
    lines.append("site-wide matched comparisons:")
    lines += [f"  {c['sentence']}" for c in r["site"] if c["sentence"]] or ["  none with enough matched pairs"]
    for d in r.get("defaults", []):
        parts = [f"time limit {d['default_time_limit_min']:.0f} min" if "default_time_limit_min" in d else "",
                 f"memory {d['default_mem_per_core_mb']:.0f} MiB per core" if "default_mem_per_core_mb" in d else ""]
        parts = [p for p in parts if p]
        if parts:
            lines.append(f"data-driven defaults for partition {d['partition'] or '(none)'} "
                         f"({d['successful_jobs']} successful jobs, 95th percentile x 1.2): " + ", ".join(parts))
    lines.append("users, lowest overall score first:")
    for u in r["users"][:20]:
        lines.append(f"  {u['user']:16} {_score(u['overall'])}  " + ", ".join(
            f"{d} {_score(v)}" for d, v in u["scores"].items()))
    return "\n".join(lines)
