"""What every hook shares: configuration that may be broken, a wall-time bound, one log line
with the job id, and an exit status that is always 0 (a failing Prolog/Epilog drains the node)."""

import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

from ..config import Config, load_config
from ..errors import NomadeError

DEFAULT_RUNTIME_DIR = "/run/nomade/jobs"


class HookTimeout(Exception):
    """The hook ran past hooks.timeout_s."""


class HookLog:
    """One line per event: ``<UTC time> nomade-<hook> job=<id>: <message>``."""

    def __init__(self, hook: str, job_id: str, path: str = ""):
        self.hook = hook
        self.job_id = job_id
        self.path = path

    def line(self, message: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = f"{stamp} nomade-{self.hook} job={self.job_id}: {message}\n"
        if self.path:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    os.write(fd, text.encode())
                    return text
                finally:
                    os.close(fd)
            except OSError:
                pass  # fall through to stderr: the line is never lost silently
        sys.stderr.write(text)
        sys.stderr.flush()
        return text


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise HookTimeout in the main thread after ``seconds`` of wall time."""
    def expire(signum, frame):
        raise HookTimeout()
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def runtime_dir(cfg: Config) -> Path:
    return Path(cfg.get("hooks.runtime_dir") or DEFAULT_RUNTIME_DIR)


HookBody = Callable[[Config, Mapping[str, str], HookLog], str]


def run_hook(hook: str, body: HookBody, environ: Optional[Mapping[str, str]] = None,
             config: Optional[Config] = None) -> int:
    """Run ``body(cfg, environ, log)`` (it returns the message to log) within hooks.timeout_s.
    Whatever happens, one line is logged and 0 is returned."""
    environ = os.environ if environ is None else environ
    log = HookLog(hook, environ.get("SLURM_JOB_ID", "?"))
    t0 = time.monotonic()
    try:
        cfg = config if config is not None else load_config(environ=environ, lenient=True)
    except NomadeError as exc:
        log.line(f"config error, hook skipped: {exc}")
        return 0
    log.path = cfg.get("hooks.log_file")
    if cfg.problems:   # a broken part of the config: the rest still runs, on defaults for that part
        log.line("config problems, defaults used instead: " + "; ".join(cfg.problems))
    timeout = cfg.get("hooks.timeout_s")
    try:
        with time_bound(timeout):
            message = body(cfg, environ, log)
        log.line(f"{message} ({time.monotonic() - t0:.2f} s)")
    except HookTimeout:
        log.line(f"gave up after hooks.timeout_s = {timeout:g} s; job unaffected")
    except NomadeError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        log.line(f"skipped: {exc}{hint}; job unaffected")
    except Exception as exc:  # noqa: BLE001 (a hook must never fail the job: one clear line instead)
        log.line(f"internal error, skipped: {type(exc).__name__}: {exc}; job unaffected")
    return 0
