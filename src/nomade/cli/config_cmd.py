"""``nomade config show|check|list``: the effective configuration, its problems, every setting."""

import click

from ..settings import SETTINGS
from .context import AppContext, echo_json, pass_app


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print every setting's effective value and its source."""
    cfg = app.config
    rows = cfg.as_rows()
    if as_json:
        echo_json({
            "file": str(cfg.file) if cfg.file else None,
            "settings": {name: {"value": value, "source": source} for name, value, source in rows},
        })
        return
    click.echo(f"# config file: {cfg.file or '(none)'}")
    width = max(len(n) for n, _, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {value!r:<30}  # {source}")


@config.command("list")
def list_settings() -> None:
    """List every setting with its type, default and help."""
    for s in SETTINGS:
        click.echo(f"{s.name} ({s.type_name}, default {s.default!r}, env {s.env_var})\n    {s.help}")


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Every problem of the configuration at once (what the hooks and services would ignore,
    what admin commands would refuse); exit 1 when there is any."""
    from ..config import load_config
    from ..errors import ConfigError

    try:
        cfg = load_config(app.config_path, app.overrides, lenient=True)
        problems, file = list(cfg.problems), cfg.file
    except ConfigError as exc:   # the file cannot be read or parsed at all
        problems, file = [str(exc)], app.config_path
    if as_json:
        echo_json({"file": str(file) if file else None, "problems": problems})
    else:
        for line in problems:
            click.echo(line)
        if not problems:
            click.echo(f"ok: {file or 'no config file; defaults and environment'}")
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {file or 'the configuration'}")
