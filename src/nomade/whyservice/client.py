"""The ``nomade-why`` side: ask the service over its Unix socket."""

import socket
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import AccessDenied, NomadeError
from ..report import JobNotFound
from .protocol import decode, encode

TIMEOUT_S = 15.0


def ask(socket_path: Path, job_id: str, cluster: str = "", timeout: float = TIMEOUT_S) -> Dict[str, Any]:
    """The service's answer for ``job_id``; AccessDenied / JobNotFound / NomadeError otherwise."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NomadeError(f"the nomade-why service is not running at {socket_path}",
                              hint="ask your administrator to start `nomade serve-why`") from None
        except PermissionError:
            raise NomadeError(f"cannot connect to {socket_path}: permission denied",
                              hint="the socket must be mode 0666") from None
        s.sendall(encode({"op": "why", "job_id": str(job_id), "cluster": cluster}))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise NomadeError(f"the nomade-why service at {socket_path} did not answer within {timeout:g} s",
                          hint="try again; if it persists, tell your administrator") from None
    finally:
        s.close()
    try:
        resp = decode(buf)
    except ValueError:
        raise NomadeError(f"the nomade-why service at {socket_path} sent a bad answer") from None
    if resp.get("ok"):
        return resp["answer"]
    kind, msg, hint = resp.get("kind"), resp.get("error", "unknown error"), resp.get("hint")
    if kind == "denied":
        raise AccessDenied(msg, hint=hint)
    if kind == "not_found":
        raise JobNotFound(msg, hint=hint)
    raise NomadeError(msg, hint=hint)


def lookup(cfg, job_id: str, cluster: str = "", direct: Optional[bool] = None) -> Dict[str, Any]:
    """The answer for the calling user: straight from the store for root (or ``direct``, with the
    same ownership check), otherwise through the service, which checks the caller itself."""
    import os

    from ..store.db import open_store
    from ..why import explain, job_owner
    from .access import Caller, check_access
    if direct is None:
        direct = os.geteuid() == 0
    if not direct:
        return ask(Path(cfg.get("privacy.socket")), job_id, cluster)
    threshold = cfg.get("model.alert_threshold") or 0.5
    with open_store(cfg.store_path, cfg.get("store.busy_timeout_ms"), migrate=False, readonly=True) as store:
        check_access(Caller(os.geteuid(), os.getegid()), job_owner(store, job_id, cluster),
                     cfg.get("privacy.admin_group"))
        return explain(store, job_id, cluster, threshold).as_dict()
