"""Typed errors. Library code raises these; only the CLI turns them into a one-line message."""

from typing import Optional, Sequence


class NomadeError(Exception):
    """Base class. ``hint`` says what to do next; the CLI prints it after the message."""

    hint: Optional[str] = None

    def __init__(self, message: str, hint: Optional[str] = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(NomadeError):
    """A setting or the config file is wrong. The message names the file and the key."""


class StoreError(NomadeError):
    """The SQLite store cannot be opened, migrated or written."""


class SlurmCommandError(NomadeError):
    """A Slurm command (or any external command) failed, timed out or could not start."""

    def __init__(self, cmd: Sequence[str], rc: Optional[int], stderr: str, message: Optional[str] = None):
        self.cmd = list(cmd)
        self.rc = rc
        self.stderr = stderr
        first = (stderr or "").strip().splitlines()
        detail = first[-1] if first else ""
        if message is None:
            if rc is None:
                message = f"{self.cmd[0]} could not run: {detail}"
            else:
                message = f"{self.cmd[0]} exited with {rc}" + (f": {detail}" if detail else "")
        super().__init__(message)


class IngestError(NomadeError):
    """An input file as a whole cannot be ingested (unreadable, wrong format). Bad records are
    quarantined instead, not raised."""


class ModelError(NomadeError):
    """A model bundle is missing, of an unknown format, or does not match the feature schema."""


class AccessDenied(NomadeError):
    """The caller may not see this job (privacy)."""


class JobNotFound(NomadeError):
    """The store has no record of this job."""
