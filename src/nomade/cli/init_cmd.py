"""``nomade init``: write a commented configuration for this machine."""

from typing import Optional

import click

from .context import AppContext, pass_app


@click.command("init")
@click.option("-o", "--output", default=None, metavar="FILE",
              help="Write the configuration here (mode 0644) instead of printing it.")
@click.option("--force", is_flag=True, help="Replace FILE when it exists.")
@pass_app
def init(app: AppContext, output: Optional[str], force: bool) -> None:
    """Probe this machine (Slurm's cluster name, mounted filesystems, license servers in
    LM_LICENSE_FILE, which collectors can run) and write a commented nomade.toml for it."""
    from pathlib import Path

    from ..collectors.registry import registry
    from ..config import load_config
    from ..errors import ConfigError
    from ..init_config import render
    from ..private_files import write_atomic

    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        mounts = ""
    # probe with the defaults: the file being replaced must not decide what this machine has
    text = render(load_config(None, app.overrides, environ={}), registry(), mounts_text=mounts)
    if output is None:
        click.echo(text, nl=False)
        return
    dest = Path(output)
    if dest.exists() and not force:
        raise ConfigError(f"{dest} exists", hint="give --force to replace it, or print with no --output")
    write_atomic(dest, text.encode("utf-8"), mode=0o644)
    click.echo(f"wrote {dest}; check it with `nomade --config {dest} config check`", err=True)
