"""The per-job risk note the Prolog leaves on the node for the TaskProlog (which runs as the
job's user): ``<hooks.runtime_dir>/<job_id>.json``, owned by the job's uid, mode 0400, in a
directory that can be traversed but not listed (0711)."""

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional


def risk_file(run_dir: Path, job_id: str) -> Path:
    return Path(run_dir) / f"{''.join(c for c in str(job_id) if c.isalnum() or c in '_.+-')}.json"


def write_risk(run_dir: Path, job_id: str, uid: Optional[int], note: Dict[str, Any]) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(run_dir, 0o711)
    path = risk_file(run_dir, job_id)
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(note, fh)
    if os.geteuid() == 0 and uid is not None:
        os.chown(tmp, uid, -1)
    os.chmod(tmp, 0o400)
    os.replace(tmp, path)
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
