"""Starting the dashboard for the CLI: the extra's presence checked once, the invoking user's
login link (``nomade dashboard`` and ``nomade demo --serve``)."""

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Optional

from ..errors import NomadeError
from . import auth

log = logging.getLogger(__name__)
BACKGROUND_JOIN_S = 10.0     # how long the demo waits for its background thread at exit


def require_web_extra() -> None:
    """One clear line when the ``web`` extra is not installed."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise NomadeError(f"the dashboard needs the web extra ({exc.name} is missing)",
                          hint="pip install 'nomade[web]'") from None


def own_token(cfg, token_file: Optional[Path] = None) -> str:
    """The invoking user's token: the one in their token file when the dashboard still accepts
    it, else a new one (``auth.make_token``)."""
    directory = auth.token_dir(cfg)
    path = token_file or auth.user_token_file()
    try:
        old = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        old = ""
    if old and auth.verify_token(directory, old) == os.getuid():
        return old
    return auth.make_token(directory, os.getuid(), path)


def demo_config(config_path: Optional[str], overrides: dict, data_dir: Path):
    """The configuration of a demo data directory (its store, its token directory)."""
    from ..config import load_config
    return load_config(config_path, {**overrides, "data_dir": str(data_dir)})


def run_collectors(cfg, stop: "threading.Event", interval_s: float = 30.0) -> None:
    """Run the enabled collectors on this machine into cfg's store every ``interval_s`` until
    ``stop`` is set (``nomade demo --serve``: the Overview fills with this machine's data). A
    collector that cannot run here is skipped, as in ``nomade collect``."""
    from ..api import Nomade
    with Nomade(cfg) as nm:
        while not stop.is_set():
            try:
                nm.collect_once()
            except NomadeError as exc:
                log.warning("demo collectors: %s", exc)
            stop.wait(interval_s)


def serve_demo(config_path: Optional[str], overrides: dict, data_dir: Path, host: Optional[str],
               port: Optional[int], say, background: Optional[Callable[..., None]] = None,
               background_note: str = "the collectors run on this machine every 30 s") -> None:
    """``nomade demo --serve``: the collectors (or ``background(cfg, stop)``: the live replay,
    ``nomade.demo_replay``) in a background thread, the dashboard over the demo store in the
    foreground, the invoking user's login link printed first. When the server stops (Ctrl-C,
    SIGTERM) the background thread is told to stop and waited for."""
    require_web_extra()
    from .app import run_server
    cfg = demo_config(config_path, overrides, data_dir)
    host = host or cfg.get("web.host")
    port = port or cfg.get("web.port")
    stop = threading.Event()
    worker = threading.Thread(target=background or run_collectors, args=(cfg, stop), daemon=True,
                              name="nomade-demo-background")
    worker.start()
    say(f"dashboard: http://{host}:{port}/  ({background_note}; Ctrl-C stops)")
    say(f"log in:    {auth.login_url(host, port, own_token(cfg, Path(cfg.data_dir) / 'dashboard-token'))}")
    try:
        run_server(cfg, host, port)
    finally:
        stop.set()
        worker.join(BACKGROUND_JOIN_S)
