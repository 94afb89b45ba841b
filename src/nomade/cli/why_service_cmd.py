"""``nomade serve-why``: the local service behind nomade-why for non-root users."""

from typing import Optional

import click

from .context import AppContext, pass_app


@click.command("serve-why")
@click.option("--socket", "socket_path", default=None, metavar="PATH",
              help="Unix socket to listen on (default: privacy.socket).")
@pass_app
def serve_why(app: AppContext, socket_path: Optional[str]) -> None:
    """Answer nomade-why requests on a Unix socket; callers identified by SO_PEERCRED."""
    from pathlib import Path

    from .. import risk_scale
    from ..whyservice.pool import PoolLimits
    from ..why_ondemand import OnDemand
    from ..whyservice.server import WhyServer, store_is_private
    cfg = app.config
    path = Path(socket_path or cfg.get("privacy.socket"))
    if not store_is_private(cfg.store_path):
        click.echo(f"nomade serve-why: warning: {cfg.store_path} is readable by other users; "
                   f"`chmod 600` it so privacy cannot be bypassed", err=True)
    limits = PoolLimits(per_uid=cfg.get("privacy.max_per_uid"))
    server = WhyServer(path, cfg.store_path, cfg.get("privacy.admin_group"),
                       cfg.get("store.busy_timeout_ms"), risk_scale.current_threshold(cfg),
                       limits, ondemand=OnDemand.from_config(cfg))
    click.echo(f"nomade serve-why: listening on {path} (store {cfg.store_path}, "
               f"admins: group {cfg.get('privacy.admin_group')}; {limits.workers} workers, "
               f"at most {limits.per_uid} connections per uid)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
