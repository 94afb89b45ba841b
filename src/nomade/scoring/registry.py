"""The model registry: bundle directories under ``<registry_dir>/<version>``, their status in the
store's ``models`` table (candidate / current / retired) and a ``CURRENT`` pointer file (plus a
``current`` symlink) written atomically, which hooks read without opening the database.

Which bundle scores: ``model.bundle`` if set, else the registry's current bundle, else the
default bundle shipped in ``models/default``. Runtime-safe: stdlib only."""

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ModelError
from ..private_files import write_atomic
from .lua_check import check_lua_model

POINTER = "CURRENT"
LINK = "current"


def default_bundle_dir() -> Path:
    """The shipped default bundle: $NOMADE_DEFAULT_BUNDLE, else where `pip install` put it
    (<prefix>/share/nomade/models/default, pyproject's data-files), else models/default of the
    source checkout this nomade runs from (editable installs)."""
    env = os.environ.get("NOMADE_DEFAULT_BUNDLE")
    if env:
        return Path(env)
    installed = Path(sys.prefix) / "share" / "nomade" / "models" / "default"
    if (installed / "manifest.json").is_file():
        return installed
    return Path(__file__).resolve().parents[3] / "models" / "default"


def _set_pointer(registry_dir: Path, version: str) -> None:
    write_atomic(registry_dir / POINTER, (version + "\n").encode(), mode=0o644)
    link = registry_dir / LINK
    tmp = registry_dir / f".{LINK}.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, link)


def current_version(registry_dir: Path) -> Optional[str]:
    p = Path(registry_dir) / POINTER
    try:
        v = p.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelError(f"cannot read {p}: {exc.strerror}", hint="check the registry permissions") from None
    return v or None


def resolve_bundle_path(cfg) -> Path:
    """The bundle directory scoring should use (see module doc)."""
    explicit = cfg.get("model.bundle")
    if explicit:
        return Path(explicit).expanduser()
    reg = cfg.registry_dir
    v = current_version(reg)
    if v is not None:
        return reg / v
    d = default_bundle_dir()
    if not (d / "manifest.json").is_file():
        raise ModelError("no model bundle: the registry has no current bundle and the default "
                         f"bundle is missing ({d})", hint="run `nomade train --publish`")
    return d


def register(store, path: Path, manifest: Dict[str, Any], status: str = "candidate") -> None:
    from ..store import models

    models.add_model(store, manifest["version"], str(path), status,
                     float(manifest.get("created_at", time.time())), manifest)


def primary_pr_auc(manifest: Dict[str, Any]) -> Optional[float]:
    """The recorded test PR-AUC of a bundle's primary submit model (an ensemble's is under
    ``metrics.ensemble``); None when the bundle was not evaluated."""
    ens = manifest.get("ensemble", {})
    prim = ens.get("primary", {}).get("submit", "")
    stack = ens.get("stacks", {}).get(prim)
    # a stack the publish gate reduced to one base (mode "single-base") is that base's figures
    key = prim if stack is None else ((stack.get("single_base") or {}).get("base") or "ensemble")
    met = manifest.get("metrics", {}).get(key)
    return None if met is None else float(met["pr_auc"])


def list_models(store) -> List[Dict[str, Any]]:
    from ..store import models

    return [{"version": r.version, "path": r.path, "status": r.status, "created_at": r.created_at,
             "promoted_at": r.promoted_at, "metrics": r.manifest.get("metrics", {}),
             "primary": r.manifest.get("ensemble", {}).get("primary"),
             "pr_auc": primary_pr_auc(r.manifest),
             "publish_gate": r.manifest.get("publish_gate", {}).get("reason")}   # None: older bundle
            for r in models.all_models(store)]


def _get(store, version: str):
    from ..store import models

    r = models.get_model(store, version)
    if r is None:
        raise ModelError(f"no model version {version!r} in the registry",
                         hint="see `nomade models list`")
    return r


LUA_MODEL_MODE = 0o600  # a first publish: only its writer reads it (install-slurm gives it to SlurmUser)


def publish_lua(bundle_dir: Path, lua_path: str) -> None:
    """Copy the bundle's submit_model.lua to ``lua_path`` once it is known to load
    (check_lua_model): a temp file created with its final owner and mode, fsynced, renamed over
    the old one, so job_submit.lua never sees half a file. The file holds (hashed) per-user
    history, so it keeps the owner and group of the file it replaces (install-slurm makes that
    SlurmUser) and a mode no looser than 0640; a new file is 0600."""
    src = Path(bundle_dir) / "submit_model.lua"
    dest = Path(lua_path)
    check_lua_model(src)
    try:
        data = src.read_bytes()
        dest.parent.mkdir(parents=True, exist_ok=True)
        _write_private(dest, data, *_lua_model_owner(dest))
    except OSError as exc:
        raise ModelError(f"cannot publish {src} to {dest} (model.lua_path): {exc.strerror}",
                         hint="run as the user that owns that file, or fix model.lua_path") from None


def _lua_model_owner(dest: Path):
    """(uid, gid, mode) for a new ``dest``: the old file's owner and group, its mode narrowed to
    at most 0640 (and readable by its owner); -1, -1, 0600 when there is no old file."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return -1, -1, LUA_MODEL_MODE
    return st.st_uid, st.st_gid, (st.st_mode & 0o640) | 0o400


def _write_private(dest: Path, data: bytes, uid: int, gid: int, mode: int) -> None:
    try:
        write_atomic(dest, data, mode=mode, owner=(uid, gid))
    except PermissionError as exc:
        if exc.filename is None:     # fchown refused (os.open names its file)
            raise ModelError(f"cannot give the new {dest} to uid {uid}, gid {gid} like the file it replaces",
                             hint="publish as root or as that file's owner") from None
        raise


def promote(store, registry_dir: Path, version: str, lua_path: str = "") -> None:
    """Make ``version`` current (the previous current becomes 'retired', kept for rollback).
    With ``lua_path`` (setting model.lua_path) the bundle's submit_model.lua is published there
    first, so a failed copy leaves the previous bundle current. An experiment (``nomade train
    --model NAME``: one base model alone) is never made current."""
    row = _get(store, version)
    path = row.path
    exp = row.manifest.get("experiment")
    if exp:
        raise ModelError(f"{version} is an experiment (`nomade train --model {exp.get('model', '?')}`) "
                         "and is never published", hint="train without --model to build a bundle to publish")
    if not (Path(path) / "manifest.json").is_file():
        raise ModelError(f"bundle directory {path} of {version} is gone", hint="retrain the model")
    if lua_path:
        publish_lua(Path(path), lua_path)
    from ..store import models

    models.make_current(store, version, time.time())
    _set_pointer(Path(registry_dir), version)


def current_in_store(store) -> Optional[str]:
    from ..store import models

    return models.current_version(store)


def rollback(store, registry_dir: Path, lua_path: str = "") -> str:
    """Make the most recently promoted retired bundle current again; returns its version."""
    from ..store import models

    cur = current_in_store(store)
    back = models.last_promoted_retired(store, cur or "")
    if back is None:
        raise ModelError("nothing to roll back to: no previously promoted bundle",
                         hint="see `nomade models list`")
    promote(store, registry_dir, back, lua_path)
    if cur:
        models.unpromote(store, cur)
    return back
