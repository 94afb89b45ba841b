"""``nomade jobs``: list jobs from the store, newest first."""

from datetime import datetime, timezone
from typing import List, Optional, Sequence, Tuple

import click

from .context import AppContext, echo_json, pass_app

_HEADERS = ("JOBID", "USER", "NAME", "STATE", "SUBMIT (UTC)", "ELAPSED", "EXIT")


def _since(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[float]:
    from ..jobs_query import parse_since
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _states(ctx: click.Context, param: click.Parameter, value: Tuple[str, ...]) -> Tuple[str, ...]:
    from ..jobs_query import state_condition
    wanted = tuple(s for v in value for s in v.split(",") if s.strip())
    try:
        state_condition(wanted)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return wanted


def _job_ids(ctx: click.Context, param: click.Parameter, value: Tuple[str, ...]) -> Tuple[str, ...]:
    from ..jobid import BadJobId, parse_job_ref
    wanted = tuple(s.strip() for v in value for s in v.split(",") if s.strip())
    for w in wanted:
        try:
            parse_job_ref(w)
        except BadJobId as exc:
            raise click.BadParameter(str(exc)) from None
    return wanted


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.option("-u", "--user", "users", multiple=True, metavar="NAME",
              help="Only this user's jobs (repeatable).")
@click.option("-s", "--state", "states", multiple=True, callback=_states, metavar="STATE",
              help="Only jobs in this Slurm state (FAILED, TIMEOUT, ...) or failure class (success, "
                   "failed, timeout, oom, system, cancelled_owner, cancelled_other, unknown). "
                   "Repeatable, or comma-separated.")
@click.option("--since", callback=_since, metavar="WHEN",
              help="Only jobs submitted since WHEN: 7d, 12h, 30m, 2w ago, or an ISO date "
                   "(2024-05-01, UTC).")
@click.option("--cluster", default=None, metavar="NAME", help="Only jobs of this cluster.")
@click.option("-j", "--job", "job_ids", multiple=True, callback=_job_ids, metavar="JOBID",
              help="Only this job: 123, 123_4 (array task), 123+1 (het component); a bare number "
                   "also finds array 123's tasks, het job 123's components and the job whose own "
                   "id (SLURM_JOB_ID) it is. Repeatable, or comma-separated.")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="At most this many jobs.")
@click.option("--all-users", is_flag=True,
              help="Everyone's jobs (root and privacy.admin_group only; the default for root).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of jobs).")
@pass_app
def jobs(app: AppContext, users: Sequence[str], states: Sequence[str], since: Optional[float],
         cluster: Optional[str], job_ids: Sequence[str], limit: int, all_users: bool, as_json: bool) -> None:
    """List jobs in the store, newest submission first.

    The same rule as nomade-why: a caller sees only their own jobs; --user OTHER and
    --all-users are for root and members of privacy.admin_group.
    """
    from ..caller_access import listing_scope
    from ..jobs_query import JobQuery, list_jobs

    scope = listing_scope(current_caller(), app.config.get("privacy.admin_group"), users, all_users)
    owner = scope.owner
    query = JobQuery(users=scope.users, states=tuple(states), since=since, cluster=cluster, limit=limit,
                     job_ids=tuple(job_ids),
                     owner_uid=owner.uid if owner else None, owner_name=owner.name if owner else None)
    with app.store(readonly=True) as store:
        rows = list_jobs(store, query)
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("no jobs" + _whose(scope) + " match")
        return
    click.echo(format_table([_HEADERS] + [_cells(r) for r in rows]))


def _whose(scope) -> str:
    if scope.users:
        return f" for user {', '.join(scope.users)}"
    if scope.owner is not None:
        return f" of yours ({scope.owner.name or 'uid ' + str(scope.owner.uid)})"
    return ""


def _cells(r) -> Tuple[str, ...]:
    return (r.job_id, r.user or "-", r.name or "-", r.state or "-", fmt_time(r.submit_time),
            fmt_duration(r.elapsed_s), fmt_exit(r.exit_code, r.exit_signal))


def format_table(rows: List[Tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def fmt_time(ts: Optional[float]) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def fmt_duration(seconds: Optional[int]) -> str:
    """Like Slurm: [D-]HH:MM:SS."""
    if seconds is None:
        return "-"
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def fmt_exit(code: Optional[int], signal: Optional[int]) -> str:
    if code is None and signal is None:
        return "-"
    return f"{'-' if code is None else code}:{0 if signal is None else signal}"
