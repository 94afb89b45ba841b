"""``nomade config show``: the effective configuration and where each value came from."""

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
