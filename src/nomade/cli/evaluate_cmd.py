"""``nomade evaluate``: temporal evaluation of the ensemble, its base models and the baselines."""

from typing import Optional

import click

from .context import AppContext, echo_json, needs_train_extra, pass_app


@click.command("evaluate")
@click.option("--cluster", default=None, help="Only this cluster's jobs (default: all in the store).")
@click.option("--folds", "n_folds", type=click.IntRange(1, 20), default=4, show_default=True,
              help="Rolling-origin folds over the last half of the history.")
@click.option("--stage", type=click.Choice(["submit", "start"]), default="submit", show_default=True,
              help="Score at submit time, or at start time (adds queue wait, load, node history).")
@click.option("--models", default="", metavar="LIST",
              help="Comma-separated base models (gbdt,gnn,lstm,autoencoder); default: all present.")
@click.option("--max-jobs", type=click.IntRange(1000, None), default=None,
              help="Use only the most recent N jobs.")
@click.option("--alert-budget", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Choose thresholds flagging at most this share of jobs (e.g. 0.1), with "
                   "model.min_precision as the floor; default: model.alert_budget.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@pass_app
@needs_train_extra
def evaluate(app: AppContext, cluster: Optional[str], n_folds: int, stage: str, models: str,
             max_jobs: Optional[int], alert_budget: Optional[float], as_json: bool) -> None:
    """Train on the past, test on the following window; report every model and both baselines."""
    from ..train.evaluation import evaluate_store

    cfg = app.config
    names = [m.strip() for m in models.split(",") if m.strip()] or None
    log = None if as_json else (lambda m: click.echo(m, err=True))
    with app.store(readonly=True) as store:
        result, out = evaluate_store(store, cfg, cluster or None, stage, n_folds, names, max_jobs,
                                     alert_budget, log=log)
    if as_json:
        from ..train.report import public
        echo_json(public(result, out))
        return
    click.echo(f"{'model':<14}{'ROC-AUC':>9}{'PR-AUC':>9}{'Brier':>8}{'ECE':>8}{'prec':>7}{'recall':>8}")
    for name, d in result["metrics"].items():
        click.echo(f"{name:<14}{d['roc_auc']:>9.3f}{d['pr_auc']:>9.3f}{d['brier']:>8.3f}"
                   f"{d['ece']:>8.3f}{d['precision']:>7.2f}{d['recall']:>8.2f}")
    click.echo(f"ensemble mode: {result['ensemble'].get('mode')}, "
               f"calibration: {result['ensemble'].get('calibration')}")
    if result.get("published"):   # the publish gate's choice (nomade.train.publish_gate.choose_primary)
        click.echo(f"training would publish: {result['published']['reason']}")
    click.echo(f"report: {out / 'report.html'}")
