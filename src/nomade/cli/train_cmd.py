"""``nomade train [--cluster C] [--publish] [--json]``."""

import click

from .context import AppContext, echo_json, needs_train_extra, pass_app


@click.command()
@click.option("--cluster", default=None, help="Train on this cluster's jobs only (default: all).")
@click.option("--publish", is_flag=True,
              help="Promote the new bundle if it is not worse than the current one beyond "
                   "train.promote_tolerance (PR-AUC on the newest window).")
@click.option("--no-full", is_flag=True,
              help="Only the Lua-compatible lite model, on one temporal split (fast; no ensemble).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@needs_train_extra
def train(app: AppContext, cluster, publish: bool, no_full: bool, as_json: bool) -> None:
    """Evaluate (rolling-origin folds: ensemble, base models, Lua model, baselines), train the
    ensemble for each stage on all history and write a model bundle (a candidate)."""
    from ..train.pipeline import publish as do_publish
    from ..train.pipeline import train_bundle

    cfg = app.config
    log = None if as_json else (lambda m: click.echo(m, err=True))
    with app.store() as store:
        res = train_bundle(store, cfg, cfg.registry_dir, cluster=cluster or cfg.get("cluster") or None,
                           use_full_features=not no_full, log=log)
        if publish:
            do_publish(store, cfg.registry_dir, res, float(cfg.get("train.promote_tolerance")),
                       str(cfg.get("model.lua_path")))
    m = res.manifest
    if as_json:
        echo_json({"version": res.version, "path": str(res.path), "promoted": res.promoted,
                   "promote_reason": res.promote_reason, "metrics": m["metrics"],
                   "thresholds": m["thresholds"], "primary": m["ensemble"]["primary"],
                   "stage_metrics": {st: ev.get("metrics") for st, ev in m["evaluation"].items()},
                   "reports": res.reports or {}})
        return
    from ..scoring.ensemble import describe
    from ..train.pipeline import headline_rows

    click.echo(f"bundle {res.version}: {res.path}")
    click.echo(f"ensemble: {describe(m)}")
    for line in headline_rows(m):
        click.echo(line)
    for stage, why in m["ensemble"].get("skipped_stages", {}).items():
        click.echo(f"{stage} stage not trained: {why}")
    for stage, rep in (res.reports or {}).items():
        click.echo(f"report ({stage} stage): {rep}/report.html")
    if publish:
        click.echo(("promoted: " if res.promoted else "not promoted: ") + res.promote_reason)
    else:
        click.echo(f"candidate only; promote with `nomade models promote {res.version}`")
