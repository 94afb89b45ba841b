"""The per-job risk note the Prolog leaves on the node for the TaskProlog (which runs as the
job's user): ``<hooks.runtime_dir>/<job_id>.json``, owned by the job's uid, mode 0400, in a
directory that can be traversed but not listed (0711)."""

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from ..private_files import write_atomic


def risk_file(run_dir: Path, job_id: str) -> Path:
    return Path(run_dir) / f"{''.join(c for c in str(job_id) if c.isalnum() or c in '_.+-')}.json"


def _runtime_dir(run_dir: Path) -> None:
    """Create the directory 0711 (traversable, not listable) when nomade makes it; one that
    exists is the admin's and keeps its mode."""
    if run_dir.is_dir():
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(run_dir, 0o711)
    except FileExistsError:
        return
    os.chmod(run_dir, 0o711)  # noqa: S103 (traversable, not listable: by design); mkdir's mode is masked by the umask; this dir is ours, just made


def write_risk(run_dir: Path, job_id: str, uid: Optional[int], note: Dict[str, Any]) -> Path:
    """The note is created 0400 and owned by the job's uid before a byte is written (never
    readable by anyone else, not even for a moment), then renamed into place (``write_atomic``;
    no directory fsync: /run is a tmpfs and the note lives as long as the job)."""
    run_dir = Path(run_dir)
    _runtime_dir(run_dir)
    path = risk_file(run_dir, job_id)
    owner = (uid, -1) if os.geteuid() == 0 and uid is not None else None
    write_atomic(path, json.dumps(note).encode(), mode=0o400, owner=owner, sync_dir=False)
    return path


def read_risk(run_dir: Path, job_id: str) -> Optional[Dict[str, Any]]:
    try:
        with open(risk_file(run_dir, job_id)) as fh:
            note = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def remove_risk(run_dir: Path, job_id: str) -> None:
    try:
        risk_file(run_dir, job_id).unlink()
    except FileNotFoundError:
        pass
