"""``nomade train [--cluster C] [--publish] [--folds N] [--model NAME] [--no-full] [--json]``."""

import click

from .context import AppContext, echo_json, needs_train_extra, pass_app


@click.command()
@click.option("--cluster", default=None, help="Train on this cluster's jobs only (default: all).")
@click.option("--publish", is_flag=True,
              help="Promote the new bundle if it passes the publish gate (no constant, near-chance, "
                   "flat-calibrated or broken model) and is not worse than the current one beyond "
                   "train.promote_tolerance (PR-AUC on the newest window).")
@click.option("--folds", type=click.IntRange(0, 20), default=None, metavar="N",
              help="Rolling-origin folds of the evaluation (default: train.folds); 0 = none, and "
                   "such a bundle is never published automatically.")
@click.option("--model", "only_model", default=None, metavar="NAME",
              help="Train one base model alone (gbdt, lite, gnn, lstm or autoencoder; evaluated "
                   "against the baselines) - an experiment, never published.")
@click.option("--no-full", is_flag=True,
              help="Only the Lua-compatible lite model, on one temporal split (fast; no ensemble).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@needs_train_extra
def train(app: AppContext, cluster, publish: bool, folds, only_model, no_full: bool, as_json: bool) -> None:
    """Evaluate (rolling-origin folds: ensemble, base models, Lua model, baselines), train the
    ensemble for each stage on all history and write a model bundle (a candidate)."""
    from ..train.pipeline import publish as do_publish
    from ..train.pipeline import train_bundle

    if only_model and (publish or no_full):
        raise click.UsageError("--model trains one base model for experiments: it is never "
                               "published and needs the full features (drop --publish / --no-full)")
    if folds is not None:
        app.overrides["train.folds"] = folds
    cfg = app.config
    log = None if as_json else (lambda m: click.echo(m, err=True))
    with app.store() as store:
        res = train_bundle(store, cfg, cfg.registry_dir, cluster=cluster or cfg.get("cluster") or None,
                           use_full_features=not no_full, log=log, only_model=only_model)
        if publish:
            do_publish(store, cfg.registry_dir, res, float(cfg.get("train.promote_tolerance")),
                       str(cfg.get("model.lua_path")))
    m = res.manifest
    gate = m.get("publish_gate", {})
    if as_json:
        echo_json({"version": res.version, "path": str(res.path), "promoted": res.promoted,
                   "promote_reason": res.promote_reason, "publish_gate": gate,
                   "metrics": m["metrics"],
                   "thresholds": m["thresholds"], "alert_policy": m.get("alert_policy", {}),
                   "primary": m["ensemble"]["primary"],
                   "stage_metrics": {st: ev.get("metrics") for st, ev in m["evaluation"].items()},
                   "reports": res.reports or {}})
        return
    _print_summary(res, publish)


def _print_summary(res, publish: bool) -> None:
    from ..scoring.ensemble import describe
    from ..train.pipeline import headline_rows

    m = res.manifest
    click.echo(f"bundle {res.version}: {res.path}")
    click.echo(f"ensemble: {describe(m)}")
    if m.get("evaluation_skipped"):
        click.echo(f"not evaluated: {m['evaluation_skipped']}")
    for line in headline_rows(m):
        click.echo(line)
    for stage, why in m["ensemble"].get("skipped_stages", {}).items():
        click.echo(f"{stage} stage not trained: {why}")
    for stage, ch in m.get("alert_policy", {}).items():
        click.echo(f"alert threshold ({stage}): {ch['threshold']:.3f}, {ch['rule']}; on its window "
                   f"{ch['flagged']:.1%} of jobs flagged, precision {ch['precision']:.2f}, "
                   f"recall {ch['recall']:.2f}")
    for stage, rep in (res.reports or {}).items():
        click.echo(f"report ({stage} stage): {rep}/report.html")
    if publish:
        click.echo(("promoted: " if res.promoted else "not promoted: ") + res.promote_reason)
    elif m.get("experiment"):
        click.echo(f"experiment ({m['experiment']['model']} alone): never published")
    else:
        click.echo(f"publish gate: {m.get('publish_gate', {}).get('reason', 'not checked')}")
        click.echo(f"candidate only; promote with `nomade models promote {res.version}`")
