"""The one door to the outside: every external command nomade runs goes through ``run_command``.

Argument list only (no shell), a mandatory timeout, the child in its own process group that is
killed on timeout, and failures raised as ``SlurmCommandError``. Tests replace this one function.
"""

import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .errors import SlurmCommandError


@dataclass(frozen=True)
class CommandResult:
    argv: Sequence[str]
    rc: int
    stdout: str
    stderr: str


def run_command(
    argv: Sequence[str],
    timeout: float,
    *,
    check: bool = True,
    env: Optional[Mapping[str, str]] = None,
    input_text: Optional[str] = None,
) -> CommandResult:
    """Run ``argv`` and return its output. Raises SlurmCommandError on a non-zero exit (when
    ``check``), on timeout (rc None, the whole process group killed) or when it cannot start."""
    if not argv:
        raise ValueError("run_command needs a non-empty argument list")
    if timeout is None or timeout <= 0:
        raise ValueError("run_command needs a positive timeout")
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.Popen(  # noqa: S603 (the one door: an argument list, never a shell)
            argv,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise SlurmCommandError(argv, None, str(exc)) from None
    try:
        out, err = proc.communicate(input=input_text.encode() if input_text is not None else None,
                                    timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SlurmCommandError(argv, None, "", message=f"{argv[0]} timed out after {timeout:g} s") from None
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    if check and proc.returncode != 0:
        raise SlurmCommandError(argv, proc.returncode, stderr)
    return CommandResult(argv, proc.returncode, stdout, stderr)


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass
