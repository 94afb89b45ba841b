"""The service: a Unix-socket server with a fixed pool of workers (``pool.WorkerPool``). The
accepting thread reads the caller's uid (SO_PEERCRED) and either queues the connection or answers
"busy" at once. A worker reads one request line within a total deadline, checks it before JSON
decoding (``protocol.decode_request``), opens the store read-only (fresh data, short lock waits),
checks the caller against the job's owner, and answers one line. Every bad input gets an
``ok: false`` line, never a dropped connection or a dead thread."""

import logging
import os
import socket
import socketserver
import stat
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import AccessDenied, NomadeError
from ..report import JobNotFound
from ..store.db import open_store
from ..why import explain, job_owner
from ..why_ondemand import OnDemand
from .access import Caller, check_access, peer_caller
from .pool import PoolLimits, WorkerPool
from .protocol import MAX_REQUEST, BadRequest, decode_request, encode, error_response

log = logging.getLogger(__name__)

OPS = ("why", "report", "similar")
MAX_K = 1000
SEND_GRACE_S = 1.0  # time to write an answer when the deadline has already passed
MAX_JOB_ID = 64


def answer(store_path: Path, caller: Caller, request: Dict[str, Any], admin_group: str,
           busy_timeout_ms: int = 2000, threshold: float = 0.5,
           ondemand: Optional[OnDemand] = None, similar: Optional["SimilarLookups"] = None) -> Dict[str, Any]:
    """One request -> one response object (never raises for request-level problems). With
    ``ondemand``, a job the store does not hold is asked of Slurm (its owner first, checked
    against the caller before anything else is read) and unscored stages are scored now.
    ``similar`` answers op "similar" (``nomade similarity --find-similar``)."""
    job_id, cluster = _job_and_cluster(request)
    if job_id is None:
        return error_response("bad_request", "bad request: expected op 'why', 'report' or 'similar' and a job id")
    try:
        if request.get("op") == "similar":
            if similar is None:
                return error_response("error", "this nomade-why service does not answer --find-similar")
            return {"ok": True, "answer": similar.answer(caller, job_id, cluster, request.get("k", 10), admin_group)}
        with open_store(store_path, busy_timeout_ms, migrate=False, readonly=True) as store:
            if request.get("op") == "report":   # the job report (nomade report as a user)
                return {"ok": True, "answer": report_answer(store, job_id, cluster, threshold, caller, admin_group)}
            owner = job_owner(store, job_id, cluster, ondemand.live if ondemand is not None else None)
            check_access(caller, owner, admin_group)
            result = explain(store, job_id, cluster, threshold, job=owner, ondemand=ondemand)
        return {"ok": True, "answer": result.as_dict()}
    except AccessDenied as exc:
        return error_response("denied", str(exc), exc.hint)
    except BadRequest as exc:
        return exc.response()
    except JobNotFound as exc:
        return error_response("not_found", str(exc), exc.hint)
    except NomadeError as exc:
        return error_response("error", str(exc), exc.hint)


def report_answer(store, job_id: str, cluster: str, threshold: float, caller: Caller,
                  admin_group: str) -> Dict[str, Any]:
    """``nomade report``'s answer: {"reports": [...], "summary": {...}, "text": ...}; the access
    rule is applied by ``load_reports`` to every job before anything of it is read."""
    from ..report import format_reports, load_reports, reports_summary
    reports = load_reports(store, job_id, cluster, threshold, caller=caller, admin_group=admin_group)
    return {"reports": [r.as_dict() for r in reports], "summary": reports_summary(reports),
            "text": format_reports(reports, job_id)}


class SimilarLookups:
    """op "similar": a job's most similar ended jobs (``behaviour.similar.find_similar``) from
    indexes kept warm in memory (``behaviour.cache.Warm``); a user sees their own similar jobs
    and aggregates over at least ``min_count`` jobs, admins everything."""

    def __init__(self, store_path, cache_dir: Path, busy_timeout_ms: int, min_count: int):
        from ..behaviour.cache import Warm
        if min_count < 1:
            raise NomadeError("behaviour.min_count must be at least 1")
        self.min_count = min_count
        self.warm = Warm(cache_dir, lambda: open_store(store_path, busy_timeout_ms, migrate=False, readonly=True))

    def answer(self, caller: Caller, job_id: str, cluster: str, k: Any, admin_group: str) -> Dict[str, Any]:
        from ..behaviour.similar import find_similar
        from ..jobid import parse_job_ref
        from .access import is_admin
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadRequest("bad_request", f"k must be a whole number from 1 to {MAX_K}")
        # text that is no job id is refused before the index is asked (which could wait for a build)
        job_id = parse_job_ref(job_id).job_id
        viewer = None if is_admin(caller, admin_group) else caller
        b, index = self.warm.get(job_id, cluster or None)
        return find_similar(b, index, job_id, viewer=viewer, admin_group=admin_group,
                            cluster=cluster or None, k=k, min_count=self.min_count)


def _job_and_cluster(request: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(job id, cluster) of a well-formed why or report request; (None, "") otherwise."""
    job_id, cluster = request.get("job_id"), request.get("cluster") or ""
    if request.get("op", "why") not in OPS or not isinstance(cluster, str) or len(cluster) > MAX_JOB_ID:
        return None, ""
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        job_id = str(job_id)
    if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > MAX_JOB_ID:
        return None, ""
    return job_id.strip(), cluster


def read_line(conn: socket.socket, deadline: float, limit: int = MAX_REQUEST) -> bytes:
    """One line (without its newline) from ``conn``, all of it before ``deadline`` (time.monotonic)
    and at most ``limit`` bytes; BadRequest otherwise. A client trickling bytes is cut at the
    deadline, not kept alive by each byte."""
    buf = bytearray()
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BadRequest("timeout", "request not complete before the deadline",
                             hint="send the whole request line at once")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(limit + 1 - len(buf))
        except socket.timeout:
            continue  # the loop's deadline check answers
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit and b"\n" not in buf:
            raise BadRequest("bad_request", f"request too large (more than {limit} bytes)")
    line = bytes(buf).split(b"\n", 1)[0]
    if not line.strip():
        raise BadRequest("bad_request", "empty request")
    return line


def send_line(conn: socket.socket, data: bytes, deadline: float) -> None:
    """Write ``data``; a client that does not read is given up at the deadline (or a short grace)."""
    conn.settimeout(max(deadline - time.monotonic(), SEND_GRACE_S))
    try:
        conn.sendall(data)
    except OSError as exc:  # includes socket.timeout: the client went away or stopped reading
        log.debug("nomade-why: answer not delivered: %s", exc)


class WhyServer(socketserver.UnixStreamServer):
    """``serve_forever()`` accepts; the pool's workers answer. ``limits`` bounds workers, waiting
    connections, connections per uid and each request's total time."""

    request_queue_size = 128  # the kernel's backlog; the accept loop empties it quickly

    def __init__(self, socket_path: Path, store_path: Path, admin_group: str,
                 busy_timeout_ms: int = 2000, threshold: float = 0.5,
                 limits: Optional[PoolLimits] = None, ondemand: Optional[OnDemand] = None,
                 similar: Optional[SimilarLookups] = None):
        self.socket_path = Path(socket_path)
        self.store_path = store_path if isinstance(store_path, str) else Path(store_path)  # str: a PostgreSQL URL
        self.admin_group = admin_group
        self.busy_timeout_ms = busy_timeout_ms
        self.threshold = threshold
        self.ondemand = ondemand
        self.similar = similar
        self.limits = limits or PoolLimits()
        self.pool = WorkerPool(self.serve_connection, self.limits)
        _prepare_socket_path(self.socket_path)
        super().__init__(str(self.socket_path), socketserver.BaseRequestHandler)
        os.chmod(self.socket_path, 0o666)  # noqa: S103 - anyone may ask; the answer depends on who asks
        self.pool.start()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Runs on the accepting thread: must not block."""
        try:
            caller = peer_caller(request)
        except OSError as exc:  # the peer is already gone
            log.debug("nomade-why: no peer credentials: %s", exc)
            request.close()
            return
        refusal = self.pool.submit(request, caller)
        if refusal is not None:
            log.info("nomade-why: busy, refused uid %d: %s", caller.uid, refusal)
            refuse(request, refusal)

    def serve_connection(self, conn: socket.socket, caller: Caller) -> None:
        """One request on a worker: read within the deadline, check, answer one line."""
        deadline = time.monotonic() + self.limits.request_timeout_s
        try:
            request = decode_request(read_line(conn, deadline))
            response = answer(self.store_path, caller, request, self.admin_group,
                              self.busy_timeout_ms, self.threshold, self.ondemand, self.similar)
        except BadRequest as exc:
            response = exc.response()
        except OSError as exc:  # the client reset the connection while we read
            log.debug("nomade-why: uid %d went away: %s", caller.uid, exc)
            return
        send_line(conn, encode(response), deadline)

    def server_close(self) -> None:
        super().server_close()
        self.pool.stop()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass


def refuse(conn: socket.socket, reason: str) -> None:
    """Answer "busy" without blocking, then close. What the client already sent is read first
    (without waiting), so closing does not turn the answer into a reset on its side."""
    response = error_response("busy", f"the nomade-why service is busy: {reason}",
                              "try again in a few seconds")
    try:
        conn.setblocking(False)
        _drain(conn)
        conn.send(encode(response))
        conn.shutdown(socket.SHUT_WR)
    except OSError as exc:  # the client is gone or its buffer is full: closing is the answer
        log.debug("nomade-why: busy answer not delivered: %s", exc)
    finally:
        conn.close()


def _drain(conn: socket.socket) -> None:
    try:
        conn.recv(MAX_REQUEST + 1)
    except BlockingIOError:
        pass  # nothing sent yet: nothing to drain


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
