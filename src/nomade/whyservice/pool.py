"""A fixed number of worker threads fed by a bounded queue. Admission never blocks the accepting
thread: a connection is either queued or refused at once (the caller then answers "busy"), and no
uid may hold more than ``per_uid`` connections, queued or being served, so one user cannot occupy
every worker."""

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import ConfigError
from .access import Caller

log = logging.getLogger(__name__)

Handler = Callable[[socket.socket, Caller], None]
_Item = Optional[Tuple[socket.socket, Caller]]


@dataclass(frozen=True)
class PoolLimits:
    """How much the service takes at once. A slow client holds one worker for at most
    ``request_timeout_s`` (plus the time to answer)."""

    workers: int = 8
    backlog: int = 32  # connections waiting for a worker
    per_uid: int = 2  # connections (waiting or served) one uid may hold: privacy.max_per_uid
    request_timeout_s: float = 5.0  # the whole request must arrive within this

    def __post_init__(self) -> None:
        if self.per_uid < 1:
            raise ConfigError(f"privacy.max_per_uid = {self.per_uid}: expected at least 1")
        if self.workers < 1 or self.backlog < 0 or self.request_timeout_s <= 0:
            raise ConfigError(f"why-service limits out of range: {self}")


class WorkerPool:
    def __init__(self, handler: Handler, limits: PoolLimits):
        self.limits = limits
        self._handler = handler
        self._queue: "queue.Queue[_Item]" = queue.Queue()
        self._lock = threading.Lock()
        self._per_uid: Dict[int, int] = {}
        self._threads: List[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.limits.workers):
            t = threading.Thread(target=self._work, name=f"nomade-why-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, conn: socket.socket, caller: Caller) -> Optional[str]:
        """Queue ``conn`` for a worker: None, or why it was refused (the connection is then the
        caller's to answer and close)."""
        with self._lock:
            held = self._per_uid.get(caller.uid, 0)
            if held >= self.limits.per_uid:
                return f"too many open requests from uid {caller.uid} (at most {self.limits.per_uid})"
            if self._queue.qsize() >= self.limits.backlog:
                return "all workers are busy"
            self._per_uid[caller.uid] = held + 1
            self._queue.put((conn, caller))
        return None

    def held_by(self, uid: int) -> int:
        with self._lock:
            return self._per_uid.get(uid, 0)

    def stop(self, timeout: float = 5.0) -> None:
        """Close what still waits, let the workers finish what they hold, and end them."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finish(*item)
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        self._threads.clear()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            conn, caller = item
            try:
                self._handler(conn, caller)
            except Exception:  # noqa: BLE001 - a bug in one request must not take a worker away
                log.exception("nomade-why: request from uid %d failed", caller.uid)
            finally:
                self._finish(conn, caller)

    def _finish(self, conn: socket.socket, caller: Caller) -> None:
        conn.close()
        with self._lock:
            left = self._per_uid.get(caller.uid, 1) - 1
            if left > 0:
                self._per_uid[caller.uid] = left
            else:
                self._per_uid.pop(caller.uid, None)
