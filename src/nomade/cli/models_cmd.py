"""``nomade models list|promote VERSION|rollback|refresh-history``."""

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
