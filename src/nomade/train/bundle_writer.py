"""Write a model bundle directory atomically: every file into a temporary directory next to the
registry, fsynced, then the directory renamed into place (``<registry_dir>/<version>``).
manifest.json is written last and lists every file with its sha256 (see docs/models.md)."""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np

from .. import __version__
from ..errors import ModelError
from ..private_files import fsync_dir, make_private_dirs, write_atomic
from ..scoring.bundle import FORMAT_VERSION, MANIFEST

Content = Union[bytes, str, dict, list, np.ndarray]


def new_version(now: float = None) -> str:
    """Sortable version name: UTC timestamp, e.g. 20261121T143000Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None (manifest and JSON files are strict JSON), numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if f == f and abs(f) != float("inf") else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _encode(name: str, content: Content) -> bytes:
    if isinstance(content, np.ndarray):
        if not name.endswith(".npy"):
            raise ModelError(f"bundle file {name}: arrays are stored as .npy")
        import io
        buf = io.BytesIO()
        np.save(buf, content, allow_pickle=False)
        return buf.getvalue()
    if isinstance(content, (dict, list)):
        return json.dumps(json_safe(content), separators=(",", ":"), allow_nan=False).encode()
    if isinstance(content, str):
        return content.encode()
    return bytes(content)


def write_bundle(registry_dir: Path, version: str, files: Mapping[str, Content],
                 manifest: Dict[str, Any], format_version: int = FORMAT_VERSION) -> Path:
    """Write ``files`` + manifest.json as ``<registry_dir>/<version>``; returns that path.
    The manifest gets format_version, nomade_version, version, created_at and files (sha256).
    ``format_version``: a history refresh keeps the format of the bundle it refreshes."""
    registry_dir = Path(registry_dir)
    make_private_dirs(registry_dir)
    final = registry_dir / version
    if final.exists():
        raise ModelError(f"bundle {final} already exists", hint="pick another version name")
    tmp = registry_dir / f".tmp-{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o700)   # the bundle holds per-user history: its owner's (and root's) only
    try:
        sums = {}
        for name, content in sorted(files.items()):
            if "/" in name or name.startswith(".") or name == MANIFEST:
                raise ModelError(f"bad bundle file name {name!r}")
            data = _encode(name, content)
            write_atomic(tmp / name, data, sync_dir=False)
            sums[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        man = json_safe(dict(manifest))
        man.update({"format_version": int(format_version), "nomade_version": __version__,
                    "version": version, "created_at": man.get("created_at", time.time()),
                    "files": sums})
        write_atomic(tmp / MANIFEST, json.dumps(man, indent=1, allow_nan=False).encode(), sync_dir=False)
        fsync_dir(tmp)
        os.rename(tmp, final)
        fsync_dir(registry_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
