"""The ``nomade-why`` side: ask the service over its Unix socket. A busy service (EAGAIN on
connect, a "busy" answer, a connection reset or refused) is retried a few times with short
pauses, all within one total timeout; then the user gets one line saying what happened."""

import socket
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..errors import AccessDenied, JobNotFound, NomadeError
from .protocol import MAX_RESPONSE, decode, encode

TIMEOUT_S = 15.0
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)  # pauses between tries; len + 1 tries at most


class _TryAgain(Exception):
    """One try met a busy or restarting service; ``message`` is what the user sees if it lasts."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def ask(socket_path: Path, job_id: str, cluster: str = "", timeout: float = TIMEOUT_S,
        retry_delays: Sequence[float] = RETRY_DELAYS_S, op: str = "why",
        extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The service's answer for ``job_id`` (``op`` "why", "report" for the job report, "similar"
    for its similar jobs, ``extra`` {"k": N}); AccessDenied / JobNotFound / NomadeError otherwise."""
    deadline = time.monotonic() + timeout
    delays = list(retry_delays)
    while True:
        try:
            return _answer_of(_ask_once(Path(socket_path), job_id, cluster, deadline, timeout, op, extra))
        except _TryAgain as exc:
            if not delays or time.monotonic() + delays[0] >= deadline:
                raise NomadeError(str(exc), hint=exc.hint) from None
        time.sleep(delays.pop(0))


def _ask_once(socket_path: Path, job_id: str, cluster: str, deadline: float,
              timeout: float, op: str = "why", extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        _connect(s, socket_path)
        s.sendall(encode({**(extra or {}), "op": op, "job_id": str(job_id), "cluster": cluster}))
        buf = _read_response(s)
    except socket.timeout:
        raise NomadeError(f"the nomade-why service at {socket_path} did not answer within {timeout:g} s",
                          hint="try again; if it persists, tell your administrator") from None
    except (ConnectionResetError, BrokenPipeError):
        raise _TryAgain(f"the nomade-why service at {socket_path} is busy (it closed the connection)",
                        "try again in a minute; if it persists, tell your administrator") from None
    finally:
        s.close()
    if not buf:
        raise _TryAgain(f"the nomade-why service at {socket_path} closed the connection without answering",
                        "try again in a minute; if it persists, tell your administrator")
    try:
        return decode(buf)
    except ValueError:
        raise NomadeError(f"the nomade-why service at {socket_path} sent a bad answer") from None


def _connect(s: socket.socket, socket_path: Path) -> None:
    try:
        s.connect(str(socket_path))
    except FileNotFoundError:
        raise NomadeError(f"the nomade-why service is not running at {socket_path}",
                          hint="ask your administrator to start `nomade serve-why`") from None
    except ConnectionRefusedError:
        raise _TryAgain(f"the nomade-why service at {socket_path} is not accepting connections",
                        "it may be restarting: try again in a minute; if it persists, ask your "
                        "administrator to start `nomade serve-why`") from None
    except BlockingIOError:  # EAGAIN: the socket's backlog is full
        raise _TryAgain(f"the nomade-why service at {socket_path} is busy (its queue is full)",
                        "try again in a minute; if it persists, tell your administrator") from None
    except PermissionError:
        raise NomadeError(f"cannot connect to {socket_path}: permission denied",
                          hint="the socket must be mode 0666") from None


def _read_response(s: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_RESPONSE:
            raise NomadeError("the nomade-why service sent an answer too large to read")
    return bytes(buf)


def _answer_of(resp: Dict[str, Any]) -> Dict[str, Any]:
    if resp.get("ok"):
        return resp["answer"]
    kind, msg, hint = resp.get("kind"), resp.get("error", "unknown error"), resp.get("hint")
    if kind == "busy":
        raise _TryAgain(msg, hint or "try again in a minute")
    if kind == "denied":
        raise AccessDenied(msg, hint=hint)
    if kind == "not_found":
        raise JobNotFound(msg, hint=hint)
    raise NomadeError(msg, hint=hint)


def reads_store(cfg, direct: Optional[bool] = None) -> bool:
    """Whether a user-facing command (nomade-why, report, similarity --find-similar) answers from
    the store itself rather than through the service: ``direct`` when given; otherwise for root
    and for a caller who can read the store's file. Users cannot (the store is private), so they
    ask the service, which applies the same rule to the caller's peer credentials; a direct
    answer applies it to the caller's own uid."""
    import os
    if direct is not None:
        return direct
    return os.geteuid() == 0 or os.access(cfg.store_path, os.R_OK)


def lookup(cfg, job_id: str, cluster: str = "", direct: Optional[bool] = None) -> Dict[str, Any]:
    """The answer for the calling user: straight from the store where ``reads_store`` (with the
    same ownership check), otherwise through the service, which checks the caller itself."""
    import os

    from .. import risk_scale
    from ..store.db import open_store, store_location
    from ..why import explain, job_owner
    from ..why_ondemand import OnDemand
    from .access import Caller, check_access
    if not reads_store(cfg, direct):
        return ask(Path(cfg.get("privacy.socket")), job_id, cluster)
    threshold = risk_scale.current_threshold(cfg)
    ondemand = OnDemand.from_config(cfg)
    with open_store(store_location(cfg), cfg.get("store.busy_timeout_ms"), migrate=False, readonly=True) as store:
        owner = job_owner(store, job_id, cluster, ondemand.live)
        check_access(Caller(os.geteuid(), os.getegid()), owner, cfg.get("privacy.admin_group"))
        return explain(store, job_id, cluster, threshold, job=owner, ondemand=ondemand).as_dict()
