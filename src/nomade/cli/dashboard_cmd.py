"""``nomade dashboard``: the web dashboard (needs the web extra), and ``nomade dashboard token``."""

import os
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


@click.group(invoke_without_command=True)
@click.option("--host", default=None, metavar="ADDR",
              help="Address to listen on (else web.host, 127.0.0.1: this machine only).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (else web.port, 8470).")
@click.pass_context
def dashboard(ctx: click.Context, host: Optional[str], port: Optional[int]) -> None:
    """Serve the web dashboard until interrupted.

    Users log in with their own token (`nomade dashboard token`) or through a trusted reverse
    proxy (web.proxy_user_header, web.trusted_proxies); each sees only their own jobs, members
    of privacy.admin_group see all. Run by a user other than root, it prints that user's login
    link.
    """
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.find_object(AppContext)
    from ..web.serve import own_token, require_web_extra
    require_web_extra()
    from ..web.app import run_server
    from ..web.auth import login_url
    cfg = app.config
    host = host or cfg.get("web.host")
    port = port or cfg.get("web.port")
    click.echo(f"nomade dashboard on http://{host}:{port}/ (store {cfg.store_path})")
    if os.getuid() != 0:
        click.echo(f"log in: {login_url(host, port, own_token(cfg))}")
    else:
        click.echo("users log in with the link `nomade dashboard token` prints for them")
    run_server(cfg, host, port)


@dashboard.command("token")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (token file, login URL).")
@pass_app
def token(app: AppContext, as_json: bool) -> None:
    """Make a new personal dashboard token (the old one stops working).

    The token is saved in ~/.config/nomade/dashboard-token (mode 0600); the dashboard keeps only
    its SHA-256, in web.token_dir/<your uid>, a file you own.
    """
    from ..web import auth
    from ..web.auth import login_url
    cfg = app.config
    path = auth.user_token_file()
    tok = auth.make_token(auth.token_dir(cfg), os.getuid(), path)
    url = login_url(cfg.get("web.host"), cfg.get("web.port"), tok)
    if as_json:
        echo_json({"token_file": str(path), "verifier": str(auth.token_dir(cfg) / str(os.getuid())),
                   "login_url": url})
        return
    click.echo(f"token saved in {path} (only you can read it)")
    click.echo(f"log in: {url}")
