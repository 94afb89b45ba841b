"""``nomade syscheck``: which collectors can run on this host, what each needs, how to fix it."""

from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


@click.command("syscheck")
@click.option("-C", "--collectors", "only", default=None, metavar="NAMES",
              help="Comma-separated collectors to check (else every registered one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def syscheck(app: AppContext, only: Optional[str], as_json: bool) -> None:
    """Probe every collector once (nothing is stored): present, skipped (and why), failed.

    Exit status 1 when a collector marked required ([collectors.<name>] required = true)
    cannot run here, or a collector plugin cannot be loaded; else 0.
    """
    from ..collectors.registry import problems, registry
    from ..errors import NomadeError
    from ..monitor import syscheck as probe

    found = registry()
    names = [x.strip() for x in only.split(",") if x.strip()] if only else None
    lines = probe(app.config, found, only=names)
    broken = problems()
    missing = [c.name for c in lines if c.missing_required]
    if as_json:
        echo_json({"collectors": [{"name": c.name, "state": c.state, "message": c.message,
                                   "needs": c.needs, "required": c.required, "enabled": c.enabled}
                                  for c in lines],
                   "problems": broken, "missing_required": missing})
    else:
        _print(lines, broken, missing)
    if missing:
        raise NomadeError(f"required collectors cannot run here: {', '.join(missing)}",
                          hint="see each one's needs above, or set [collectors.<name>] required = false")
    if broken:
        raise NomadeError(f"{len(broken)} collector module(s) or plugin(s) could not be loaded",
                          hint="see the problem lines above")


def _print(lines, broken, missing) -> None:
    width = max([len(c.name) for c in lines] + [4])
    for c in lines:
        mark = {"ok": "present", "skipped": "skipped", "failed": "FAILED", "disabled": "disabled"}[c.state]
        req = " (required)" if c.required else ""
        click.echo(f"{c.name:<{width}}  {mark}{req}" + (f": {c.message}" if c.message and c.state != "disabled" else ""))
        if c.needs:
            click.echo(f"{'':<{width}}  needs: {c.needs}")
        if c.state in ("skipped", "failed"):
            click.echo(f"{'':<{width}}  fix: provide what it needs on this host, or set "
                       f"[collectors.{c.name}] enabled = false")
    for line in broken:
        click.echo(f"problem: {line}")
    if not lines:
        click.echo("no collectors registered")
