"""``nomade readiness [--json]``."""

import click

from .context import AppContext, echo_json, needs_train_extra, pass_app


@click.command()
@click.option("--cluster", default=None, help="Measure on this cluster's jobs only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@needs_train_extra
def readiness(app: AppContext, cluster, as_json: bool) -> None:
    """Measure, per model, whether this site's history is enough (temporal learning curve)."""
    from ..train.readiness import measure_readiness

    with app.store() as store:
        res = measure_readiness(store, app.config, cluster or app.config.get("cluster") or None)
    if as_json:
        echo_json({"models": [r.to_json() for r in res]})
        return
    for r in res:
        pts = ", ".join(f"{p['train_jobs']}:{p['pr_auc']:.3f}" for p in r.curve)
        click.echo(f"{r.model:<12} {r.verdict}")
        if r.curve:
            click.echo(f"{'':<12} learning curve (train jobs: PR-AUC) {pts}")
