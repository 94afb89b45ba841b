"""``nomade alerts``: list alerts; ``ack``, ``silence``, ``silences`` (admins), ``rules``, ``test CHANNEL``."""

import re
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import click

from .context import AppContext, echo_json, pass_app

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


def _is_admin(app: AppContext) -> bool:
    from ..whyservice.access import is_admin
    return is_admin(current_caller(), app.config.get("privacy.admin_group"))


def _require_admin(app: AppContext, what: str) -> str:
    from ..errors import AccessDenied
    caller = current_caller()
    from ..whyservice.access import is_admin
    group = app.config.get("privacy.admin_group")
    if not is_admin(caller, group):
        raise AccessDenied(f"{what}: only root and members of {group or 'the admin group'} may do this")
    return caller.name or f"uid {caller.uid}"


def _duration(text: str, option: str) -> float:
    from ..alerts.rules import parse_duration
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _since(text: Optional[str]) -> Optional[float]:
    """--since 2h (ago) or an ISO date/time (UTC when no zone)."""
    if text is None:
        return None
    try:
        return time.time() - _duration(text, "--since")
    except click.BadParameter:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text[:40]!r}: expected a duration (2h, 3d) or a date (2026-12-01)",
                                 param_hint="--since") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _when(ts: Optional[float]) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


@click.group(invoke_without_command=True)
@click.option("--unresolved", is_flag=True, help="Only alerts that are still open (firing, no data, error).")
@click.option("--severity", type=click.Choice(["info", "warning", "critical"]), default=None,
              help="Only alerts of this severity.")
@click.option("--since", default=None, metavar="WHEN",
              help="Only alerts updated since WHEN: a duration ago (2h, 3d) or a date (2026-12-01).")
@click.option("--json", "as_json", is_flag=True, help="Print alerts and undelivered notifications as JSON.")
@click.pass_context
def alerts(ctx: click.Context, unresolved: bool, severity: Optional[str], since: Optional[str],
           as_json: bool) -> None:
    """List alerts, newest first (docs/alerts.md).

    Admins (root, privacy.admin_group) see every alert and the notifications that could not be
    delivered; other users see only alerts about their own jobs.
    """
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.find_object(AppContext)
    from ..store import alerts as store_alerts
    admin = _is_admin(app)
    owner = None if admin else (current_caller().name or "")
    with app.store(readonly=True) as store:
        rows = store_alerts.list_alerts(store, unresolved=unresolved, severity=severity,
                                        since=_since(since), owner=owner)
        undelivered = store_alerts.undelivered(store) if admin else []
    if as_json:
        echo_json({"alerts": [_public(r) for r in rows], "undelivered": undelivered})
        return
    _print(rows, undelivered)


def _public(r: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("id", "rule", "cluster", "severity", "state", "labels", "value", "summary", "description",
            "owner", "started_at", "fired_at", "resolved_at", "updated_at", "last_sent_at",
            "acked_at", "acked_until", "acked_by", "ack_note")
    return {k: r.get(k) for k in keys}


def _print(rows: List[Dict[str, Any]], undelivered: List[Dict[str, Any]]) -> None:
    from ..analysis.words import printable
    if not rows:
        click.echo("no alerts")
    for r in rows:
        acked = ""
        if r.get("acked_at") is not None and r["state"] != "resolved":
            acked = " [acked" + (f" until {_when(r['acked_until'])}" if r.get("acked_until") else "") + "]"
        click.echo(f"#{r['id']} {r['state']:<8} {r['severity']:<8} {_when(r.get('fired_at') or r['started_at'])} "
                   f"{r['rule']}: {printable(r['summary'])}{acked}")
    if undelivered:
        click.echo(f"{len(undelivered)} notification(s) not delivered:")
        for d in undelivered:
            state = "given up" if d["done"] else f"next try {_when(d['next_try'])}"
            click.echo(f"  {d['channel']} {printable(d['group_key'])}: {printable(d['error'])} "
                       f"({d['attempts']} attempts, {state})")


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--for", "for_", default=None, metavar="DURATION",
              help="Acknowledge for this long (4h, 2d); else until the alert resolves.")
@click.option("--note", default="", metavar="TEXT", help="Why, for the others (shown in `nomade alerts`).")
@pass_app
def ack(app: AppContext, alert_id: int, for_: Optional[str], note: str) -> None:
    """Acknowledge alert ALERT_ID: no repeats until it resolves (or --for ends). Admins only."""
    from ..errors import NomadeError
    from ..store import alerts as store_alerts
    by = _require_admin(app, "ack")
    now = time.time()
    until = now + _duration(for_, "--for") if for_ else None
    with app.store() as store:
        if not store_alerts.ack(store, alert_id, now, until, by, _clean(note)):
            raise NomadeError(f"no open alert #{alert_id}", hint="`nomade alerts --unresolved` lists them")
    click.echo(f"alert #{alert_id} acknowledged" + (f" until {_when(until)}" if until else " until it resolves"))


def _clean(text: str) -> str:
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())[:500]


def parse_matchers(items: Tuple[str, ...]) -> Dict[str, str]:
    """``rule=disk_fill mount=/scratch`` -> {"rule": "disk_fill", "mount": "/scratch"}."""
    out: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL.match(key) or not value or re.search(r"[\x00-\x1f\x7f]", value):
            raise click.BadParameter(f"{item[:60]!r}: expected label=value (e.g. rule=disk_fill)",
                                     param_hint="MATCHERS")
        out[key] = value
    if not out:
        raise click.BadParameter("give at least one label=value", param_hint="MATCHERS")
    return out


@alerts.command("silence")
@click.argument("matchers", nargs=-1)
@click.option("--for", "for_", required=True, metavar="DURATION", help="How long (2h, 1d).")
@click.option("--note", default="", metavar="TEXT", help="Why.")
@pass_app
def silence(app: AppContext, matchers: Tuple[str, ...], for_: str, note: str) -> None:
    """Silence alerts whose labels match every MATCHER (label=value; rule, cluster and severity
    count as labels) for a while: no notifications. Admins only."""
    from ..store import alerts as store_alerts
    wanted = parse_matchers(matchers)
    by = _require_admin(app, "silence")
    now = time.time()
    length = _duration(for_, "--for")
    if length <= 0:
        raise click.BadParameter("must be longer than 0", param_hint="--for")
    with app.store() as store:
        sid = store_alerts.add_silence(store, wanted, now, now + length, by, _clean(note))
    shown = " ".join(f"{k}={v}" for k, v in wanted.items())
    click.echo(f"silence #{sid}: {shown} until {_when(now + length)}")


@alerts.command("silences")
@click.option("--all", "show_all", is_flag=True, help="Also the silences that ended or have not begun.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def silences(app: AppContext, show_all: bool, as_json: bool) -> None:
    """The silences in force (with --all, every one): matchers, until when, who, why. Admins only."""
    from ..store import alerts as store_alerts
    _require_admin(app, "silences")
    now = time.time()
    with app.store(readonly=True) as store:
        rows = store_alerts.silences(store, None if show_all else now)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no silences in force" if not show_all else "no silences")
        return
    for r in rows:
        shown = " ".join(f"{_clean(str(k))}={_clean(str(v))}" for k, v in sorted(r["matchers"].items()))
        state = "in force" if r["starts_at"] <= now < r["ends_at"] else ("ended" if r["ends_at"] <= now else "not yet")
        click.echo(f"#{r['id']} {shown} until {_when(r['ends_at'])} ({state}; by {_clean(str(r['created_by']))}"
                   + (f": {_clean(str(r['note']))}" if r.get("note") else "") + ")")


@alerts.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@pass_app
def rules(app: AppContext, as_json: bool) -> None:
    """The effective rules (defaults and alerts.rule_files), validated."""
    from ..alerts.rules import load_rules
    rs = load_rules(app.config)
    if as_json:
        echo_json({"rules": [r.as_dict() for r in rs.rules], "disabled": rs.disabled})
        return
    for r in rs.rules:
        click.echo(f"{r.name:<26} {r.kind:<13} {_condition(r)}" + (f" for {r.for_s:g}s" if r.for_s else ""))
    if rs.disabled:
        click.echo(f"disabled: {', '.join(rs.disabled)}")
    click.echo(f"{len(rs.rules)} rules, valid")


def _condition(r: Any) -> str:
    levels = ", ".join(f"{sev} {r.op} {t:g}" for sev, t in r.levels)
    if r.kind != "metric":
        return levels
    what = r.measure if r.measure != "value" else ""
    target = r.metric + (f"/{r.divide_by}" if r.divide_by else "")
    return f"{what + ' of ' if what else ''}{target}: {levels}"


@alerts.command("test")
@click.argument("channel")
@pass_app
def test(app: AppContext, channel: str) -> None:
    """Send a test message through CHANNEL (email, slack, webhook, alertmanager) and say what
    happened."""
    from ..alerts.engine import Engine
    from ..alerts.rules import RuleSet
    _require_admin(app, "test")
    with app.store() as store:
        out = Engine(app.config, store, rules=RuleSet(), channels=[]).test_channel(channel)
    if out["ok"]:
        click.echo(f"{channel}: delivered ({out['attempts']} attempt(s))")
    else:
        from ..errors import NomadeError
        raise NomadeError(f"{channel}: not delivered: {out['error']}")
