"""``nomade jobs``: list jobs from the store, newest first."""

import os
import pwd
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


def caller_user_name() -> Optional[str]:
    """The caller's user name, or None for root (who sees every job)."""
    if os.geteuid() == 0:
        return None
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


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
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="At most this many jobs.")
@click.option("--all-users", is_flag=True,
              help="Everyone's jobs (default for root; others see only their own unless --user).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of jobs).")
@pass_app
def jobs(app: AppContext, users: Sequence[str], states: Sequence[str], since: Optional[float],
         cluster: Optional[str], limit: int, all_users: bool, as_json: bool) -> None:
    """List jobs in the store, newest submission first.

    Non-root callers see only their own jobs unless they pass --user or --all-users; the store
    file's permissions decide what they can read at all.
    """
    from ..jobs_query import JobQuery, list_jobs

    own = caller_user_name()
    if not users and not all_users and own is not None:
        users = (own,)
    query = JobQuery(users=tuple(users), states=tuple(states), since=since, cluster=cluster, limit=limit)
    with app.store(readonly=True) as store:
        rows = list_jobs(store, query)
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        who = f" for user {', '.join(users)}" if users else ""
        click.echo(f"no jobs{who} match" + ("" if users != (own,) else " (--all-users for everyone's)"))
        return
    click.echo(format_table([_HEADERS] + [_cells(r) for r in rows]))


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
