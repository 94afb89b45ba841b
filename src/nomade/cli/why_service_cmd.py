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
    from ..store.db import store_location
    from ..store.pg import redact
    from ..whyservice.server import SimilarLookups, WhyServer, store_is_private
    cfg = app.lenient_config("nomade serve-why")
    path = Path(socket_path or cfg.get("privacy.socket"))
    store = store_location(cfg)   # a SQLite file, or a PostgreSQL URL (its roles guard it)
    if isinstance(store, Path) and not store_is_private(store):
        click.echo(f"nomade serve-why: warning: {store} is readable by other users; "
                   f"`chmod 600` it so privacy cannot be bypassed", err=True)
    limits = PoolLimits(per_uid=cfg.get("privacy.max_per_uid"))
    similar = SimilarLookups(store, cfg.data_dir / "cache", cfg.get("store.busy_timeout_ms"),
                             cfg.get("behaviour.min_count"))
    server = WhyServer(path, store, cfg.get("privacy.admin_group"),
                       cfg.get("store.busy_timeout_ms"), risk_scale.current_threshold(cfg),
                       limits, ondemand=OnDemand.from_config(cfg), similar=similar)
    similar.warm.warm_up()   # --find-similar's index, built in the background
    click.echo(f"nomade serve-why: listening on {path} (store {redact(str(store))}, "
               f"admins: group {cfg.get('privacy.admin_group')}; {limits.workers} workers, "
               f"at most {limits.per_uid} connections per uid)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
