"""``nomade models list|promote VERSION|rollback|refresh-history|performance``."""

import click

from .context import AppContext, echo_json, pass_app


@click.group()
def models() -> None:
    """The model registry: list, promote, roll back, refresh history tables."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Bundles in the registry with their status and headline metric."""
    from ..scoring.registry import list_models

    with app.store() as store:
        rows = list_models(store)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no bundles yet; run `nomade train`")
    for r in rows:
        prim = (r["primary"] or {}).get("submit", "")
        pr = float("nan") if r["pr_auc"] is None else r["pr_auc"]
        click.echo(f"{r['version']:<36} {r['status']:<10} {prim:<12} PR-AUC {pr:.3f}  {r['path']}")


@models.command("promote")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def promote_(app: AppContext, version: str, as_json: bool) -> None:
    """Make VERSION the current bundle."""
    from ..scoring.registry import promote

    with app.store() as store:
        promote(store, app.config.registry_dir, version, str(app.config.get("model.lua_path")))
    echo_json({"current": version}) if as_json else click.echo(f"current: {version}")


@models.command("rollback")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def rollback_(app: AppContext, as_json: bool) -> None:
    """Go back to the previously promoted bundle."""
    from ..scoring.registry import rollback

    with app.store() as store:
        v = rollback(store, app.config.registry_dir, str(app.config.get("model.lua_path")))
    echo_json({"current": v}) if as_json else click.echo(f"current: {v}")


@models.command("refresh-history")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def refresh_history_(app: AppContext, as_json: bool) -> None:
    """Rebuild the current bundle's history tables (and submit_model.lua) from newly ended jobs."""
    from ..train.pipeline import refresh_history

    with app.store() as store:
        res = refresh_history(store, app.config, app.config.registry_dir)
    if as_json:
        echo_json({"current": res.version, "path": str(res.path),
                   "refreshed_from": res.manifest.get("history_refreshed_from")})
    else:
        click.echo(f"current: {res.version} (history refreshed from "
                   f"{res.manifest.get('history_refreshed_from')})")


@models.command("performance")
@click.option("--since", default="30d", show_default=True, metavar="AGE",
              help="Jobs submitted in the last AGE (e.g. 7d, 12h, 90d).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def performance_(app: AppContext, since: str, as_json: bool) -> None:
    """The warnings users were actually shown, against what their jobs did: share warned,
    precision, recall and calibration by risk level, per stage and model version, next to what
    the bundle's evaluation promised. Records the submit-stage verdicts not yet recorded first."""
    import time

    from ..jobs_query import parse_since
    from ..production import LOOKBACK_S, performance, record_submit_scores

    try:
        cutoff = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    with app.store() as store:
        record_submit_scores(store, lookback_s=max(LOOKBACK_S, time.time() - cutoff))
        rows = performance(store, since=cutoff,
                           owner_cancel_is_failure=bool(app.config.get("model.owner_cancel_is_failure")),
                           alert_threshold=float(app.config.get("model.alert_threshold")))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo(f"no recorded warnings for jobs that ended (submitted in the last {since}); "
                   "submit scores are recorded at `nomade ingest sacct` for jobs submitted after "
                   "the first promotion")
        return
    click.echo(f"{'stage':<7} {'model':<34} {'jobs':>7} {'warned':>7} {'precision':>10} {'recall':>7}"
               f"   promised precision/recall/warned")
    for r in rows:
        p = r.promised
        prom = "/".join(_pct(p.get(k)) for k in ("precision", "recall", "warned_share")) if p else "-"
        click.echo(f"{r.stage:<7} {r.model_version:<34} {r.jobs:>7} {_pct(r.warned_share):>7} "
                   f"{_pct(r.precision):>10} {_pct(r.recall):>7}   {prom}")
        if r.model_version == "all":
            for b in r.bands:
                click.echo(f"        {b.level:<9} {b.n:>7} jobs  predicted {_pct(b.mean_risk)}  "
                           f"failed {_pct(b.failure_rate)}")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"
