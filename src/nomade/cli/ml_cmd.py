"""``nomade ml status``: the current model, its evaluation and how its warnings did in production."""

import click

from .context import AppContext, echo_json, pass_app


@click.group()
def ml() -> None:
    """The prediction engine at a glance."""


@ml.command("status")
@click.option("--since", default="30d", show_default=True, metavar="AGE",
              help="Production performance over jobs submitted in the last AGE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, since: str, as_json: bool) -> None:
    """Models in the registry, the current bundle's evaluation, alert policy and publish gate,
    and the production performance of the warnings (`nomade models performance`)."""
    from ..jobs_query import parse_since
    from ..ml_status import manifest_of, summary as current_summary
    from ..production import performance
    from ..scoring.registry import list_models
    from ..store.models import current_version
    from .models_cmd import _pct   # one way to print a share

    try:
        cutoff = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    cfg = app.config
    with app.store(readonly=True) as store:
        models = list_models(store)
        cur = current_version(store)
        row = next((m for m in models if m["version"] == cur), None)
        manifest = manifest_of(store, cur)
        perf = performance(store, since=cutoff,
                           owner_cancel_is_failure=bool(cfg.get("model.owner_cancel_is_failure")),
                           alert_threshold=float(cfg.get("model.alert_threshold")))
    summary = current_summary(cur, row, manifest, cfg)
    if as_json:
        echo_json({"current": summary, "models": models, "performance": [p.as_dict() for p in perf]})
        return
    if cur is None:
        click.echo("model: none published yet (the shipped default scores); run `nomade train --publish`")
    else:
        click.echo(f"model: {cur}, trained {summary['age_days']:.1f} days ago on {summary['jobs']} jobs"
                   + (" - older than model.retrain_interval_days" if summary["stale"] else ""))
        click.echo(f"  evaluation: PR-AUC {_f(summary['pr_auc'])}, alert threshold {_f(summary['threshold'])} "
                   f"({summary['policy']}), publish gate {summary['gate']}")
    click.echo(f"registry: {len(models)} bundles ({sum(1 for m in models if m['status'] == 'candidate')} candidates)")
    overall = [p for p in perf if p.model_version == "all"]
    if not overall:
        click.echo(f"production: no recorded warnings for ended jobs submitted in the last {since}")
    for p in overall:
        click.echo(f"production ({p.stage}, last {since}): {p.jobs} jobs, {_pct(p.warned_share)} warned, "
                   f"precision {_pct(p.precision)}, recall {_pct(p.recall)}")


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"

