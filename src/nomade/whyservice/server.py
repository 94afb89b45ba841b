"""The service: a threaded Unix-socket server. Each request opens the store read-only (fresh data,
short lock waits), checks the caller (SO_PEERCRED) against the job's owner, and answers."""

import os
import socketserver
import stat
from pathlib import Path
from typing import Any, Dict

from ..errors import AccessDenied, NomadeError
from ..report import JobNotFound
from ..store.db import open_store
from ..why import explain, job_owner
from .access import Caller, check_access, peer_caller
from .protocol import MAX_REQUEST, decode, encode

REQUEST_TIMEOUT_S = 10.0


def answer(store_path: Path, caller: Caller, request: Dict[str, Any], admin_group: str,
           busy_timeout_ms: int = 2000, threshold: float = 0.5) -> Dict[str, Any]:
    """One request -> one response object (never raises for request-level problems)."""
    job_id = str(request.get("job_id") or "").strip()
    if request.get("op", "why") != "why" or not job_id or len(job_id) > 64:
        return {"ok": False, "kind": "error", "error": "bad request: expected op 'why' and a job id"}
    try:
        with open_store(store_path, busy_timeout_ms, migrate=False, readonly=True) as store:
            owner = job_owner(store, job_id, str(request.get("cluster") or ""))
            check_access(caller, owner, admin_group)
            result = explain(store, job_id, str(request.get("cluster") or ""), threshold)
        return {"ok": True, "answer": result.as_dict()}
    except AccessDenied as exc:
        return {"ok": False, "kind": "denied", "error": str(exc), "hint": exc.hint}
    except JobNotFound as exc:
        return {"ok": False, "kind": "not_found", "error": str(exc), "hint": exc.hint}
    except NomadeError as exc:
        return {"ok": False, "kind": "error", "error": str(exc), "hint": exc.hint}


class _Handler(socketserver.StreamRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def handle(self) -> None:
        srv: "WhyServer" = self.server  # type: ignore[assignment]
        caller = peer_caller(self.request)
        line = self.rfile.readline(MAX_REQUEST + 1)
        try:
            request = decode(line) if len(line) <= MAX_REQUEST else {}
        except ValueError:
            request = {}
        response = answer(srv.store_path, caller, request, srv.admin_group, srv.busy_timeout_ms,
                          srv.threshold)
        self.wfile.write(encode(response))


class WhyServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: Path, store_path: Path, admin_group: str,
                 busy_timeout_ms: int = 2000, threshold: float = 0.5):
        self.socket_path = Path(socket_path)
        self.store_path = Path(store_path)
        self.admin_group = admin_group
        self.busy_timeout_ms = busy_timeout_ms
        self.threshold = threshold
        _prepare_socket_path(self.socket_path)
        super().__init__(str(self.socket_path), _Handler)
        os.chmod(self.socket_path, 0o666)  # anyone may ask; the answer depends on who asks

    def server_close(self) -> None:
        super().server_close()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass


def _prepare_socket_path(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise NomadeError(f"{path} exists and is not a socket; refusing to replace it",
                                  hint="set privacy.socket to another path")
            path.unlink()
    except OSError as exc:
        raise NomadeError(f"cannot prepare the socket {path}: {exc.strerror or exc}",
                          hint="run serve-why as the service user that owns its directory") from None


def store_is_private(store_path: Path) -> bool:
    """True when only the owner can read the store file (what the deployment requires)."""
    try:
        return not (os.stat(store_path).st_mode & 0o077)
    except FileNotFoundError:
        return True
