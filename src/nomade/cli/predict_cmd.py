"""``nomade predict``: the risk of the jobs pending and running now."""

from typing import Sequence

import click

from .context import AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.option("-u", "--user", "users", multiple=True, metavar="NAME", help="Only this user's jobs (repeatable).")
@click.option("--all-users", is_flag=True,
              help="Everyone's jobs (root and privacy.admin_group only; the default for root).")
@click.option("-n", "--limit", default=200, show_default=True, type=click.IntRange(min=1),
              help="Score at most this many jobs (each is one scontrol call).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of jobs).")
@pass_app
def predict(app: AppContext, users: Sequence[str], all_users: bool, limit: int, as_json: bool) -> None:
    """Score the jobs pending and running now with the current bundle, as nomade-why would:
    risk, level, main reasons, and whether sbatch warned. A caller sees only their own jobs;
    --user OTHER and --all-users are for root and members of privacy.admin_group."""
    from ..caller_access import listing_scope
    from ..predict import predict as score_jobs
    from ..predict import queued_jobs
    from ..why_ondemand import OnDemand

    cfg = app.config
    scope = listing_scope(current_caller(), cfg.get("privacy.admin_group"), users, all_users)
    timeout = float(cfg.get("slurm.command_timeout_s"))
    queue = queued_jobs(cfg, scope.owner.uid if scope.owner is not None else None, timeout)
    if scope.users:
        queue = [q for q in queue if q.user in scope.users]
    shown = queue[:limit]
    from pathlib import Path

    from ..store.db import store_location
    where = store_location(cfg)
    if not isinstance(where, Path) or where.exists():   # a PostgreSQL URL, or an existing file
        with app.store(readonly=True) as store:
            rows = score_jobs(cfg, store, shown, OnDemand.from_config(cfg))
    else:   # no store yet: the history features know nothing, the scores still come
        rows = score_jobs(cfg, None, shown, OnDemand.from_config(cfg))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("no pending or running jobs")
        return
    click.echo(f"{'JOBID':<12} {'USER':<12} {'STATE':<9} {'RISK':>5} {'LEVEL':<9} {'SBATCH':<7} REASONS")
    for r in rows:
        risk = "-" if r.risk is None else f"{100 * r.risk:.0f}%"
        sb = "-" if r.warned is None else ("warned" if r.warned else "quiet")
        why = r.error or "; ".join(r.reasons)
        click.echo(f"{r.job_id:<12} {r.user:<12.12} {r.state:<9.9} {risk:>5} {r.level or '-':<9} {sb:<7} {why}")
    if len(queue) > limit:
        click.echo(f"({len(queue) - limit} more not scored; --limit)")
