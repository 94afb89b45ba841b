"""Load and validate a model bundle directory (format described in docs/models.md).

One loader per bundle format version (``LOADERS``); a bundle newer than this nomade, with a
feature schema other than the code's, or with a missing/altered file is refused with a
ModelError that names the problem. Runtime-safe: stdlib + numpy."""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

from ..errors import ModelError

FORMAT_VERSION = 2   # 2: stacked ensembles per stage (ensemble.stacks); 1: single calibrated GBDTs
MANIFEST = "manifest.json"


def code_schema_hash(inputs: str, names: List[str]) -> str:
    """The feature-schema hash the running code produces for a model's ``inputs``."""
    if inputs.startswith("lite"):
        from .lite_features import lite_names, schema_hash
        return schema_hash(lite_names(inputs == "lite_history"))
    from ..features.schema import feature_names, schema_hash
    return schema_hash(feature_names(inputs))


def bundle_file(path: Path, name: Any) -> Path:
    """``path / name`` for a file name read from a bundle's manifest, refused (ModelError naming
    it) unless it stays inside the bundle directory: no absolute path, no ``..``, no symlink
    that leads out."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ModelError(f"bundle {path}: file name {name!r} is not a file name", hint="retrain the model")
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        raise ModelError(f"bundle {path}: file {name!r} points outside the bundle directory",
                         hint="the manifest was altered; roll back or retrain")
    root = Path(os.path.realpath(path))
    real = Path(os.path.realpath(path / name))
    if real != root and root not in real.parents:
        raise ModelError(f"bundle {path}: file {name!r} points outside the bundle directory "
                         f"(to {real})", hint="the bundle was altered; roll back or retrain")
    return path / name


@dataclass
class Bundle:
    path: Path
    manifest: Dict[str, Any]
    _cache: Dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", self.path.name))

    @property
    def models(self) -> Dict[str, Dict[str, Any]]:
        return self.manifest.get("models", {})

    def file(self, name: str) -> Path:
        return bundle_file(self.path, name)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.file(name).read_bytes()
        except OSError as exc:
            raise ModelError(f"bundle {self.path}: cannot read {name}: {exc.strerror}",
                             hint="the bundle is damaged; roll back (`nomade models rollback`) or retrain") from None

    def json(self, name: str) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = json.loads(self.read_bytes(name))
            except ValueError:
                raise ModelError(f"bundle {self.path}: {name} is not valid JSON (truncated?)",
                                 hint="the bundle is damaged; roll back or retrain") from None
        return self._cache[name]

    def array(self, name: str) -> np.ndarray:
        try:
            return np.load(self.file(name), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"bundle {self.path}: cannot load array {name}: {exc}",
                             hint="the bundle is damaged; roll back or retrain") from None


def _check_files(path: Path, manifest: Dict[str, Any], verify_hashes: bool) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelError(f"bundle {path}: manifest has no file list", hint="retrain the model")
    for name, meta in files.items():
        p = bundle_file(path, name)
        if not p.is_file():
            raise ModelError(f"bundle {path}: file {name} is missing",
                             hint="the bundle is damaged; roll back or retrain")
        size = p.stat().st_size
        if size != meta.get("bytes", size):
            raise ModelError(f"bundle {path}: file {name} has {size} bytes, manifest says "
                             f"{meta['bytes']} (truncated?)", hint="roll back or retrain")
        if verify_hashes and hashlib.sha256(p.read_bytes()).hexdigest() != meta.get("sha256"):
            raise ModelError(f"bundle {path}: file {name} does not match its sha256",
                             hint="the bundle was altered; roll back or retrain")


def _check_schemas(path: Path, manifest: Dict[str, Any]) -> None:
    schemas = manifest.get("feature_schema", {})
    for inputs, sch in schemas.items():
        want = code_schema_hash(inputs, sch.get("names", []))
        if sch.get("hash") != want:
            raise ModelError(f"bundle {path}: feature schema {inputs!r} of the bundle "
                             f"({str(sch.get('hash'))[:12]}) differs from this nomade's ({want[:12]})",
                             hint="retrain with this nomade (`nomade train`) or install the nomade "
                                  "version that built the bundle")


def _load_v1(path: Path, manifest: Dict[str, Any], verify_hashes: bool) -> Bundle:
    for key in ("models", "feature_schema", "thresholds", "ensemble"):
        if key not in manifest:
            raise ModelError(f"bundle {path}: manifest lacks {key!r}", hint="retrain the model")
    _check_files(path, manifest, verify_hashes)
    _check_schemas(path, manifest)
    for name, m in manifest["models"].items():
        if m.get("file") not in manifest["files"]:
            raise ModelError(f"bundle {path}: model {name} names file {m.get('file')!r} "
                             "that the bundle does not list", hint="retrain the model")
    return Bundle(path=path, manifest=manifest)


def _load_v2(path: Path, manifest: Dict[str, Any], verify_hashes: bool) -> Bundle:
    """Format 2 = format 1 + ``ensemble.stacks`` (per stage: bases, weights, calibration) and
    models that name ``.npy`` arrays; every base and array must be in the bundle."""
    bundle = _load_v1(path, manifest, verify_hashes)
    for name, m in manifest["models"].items():
        for arr in m.get("arrays", []):
            if arr not in manifest["files"]:
                raise ModelError(f"bundle {path}: model {name} names array {arr!r} that the bundle "
                                 "does not list", hint="retrain the model")
    for name, st in manifest["ensemble"].get("stacks", {}).items():
        for key in ("stage", "bases", "coef", "intercept", "mu", "sd", "calibration"):
            if key not in st:
                raise ModelError(f"bundle {path}: stack {name} lacks {key!r}", hint="retrain the model")
        missing = [b for b in st["bases"] if b not in manifest["models"]]
        if missing:
            raise ModelError(f"bundle {path}: stack {name} names base models {missing} that the "
                             "bundle does not have", hint="retrain the model")
    return bundle


LOADERS: Dict[int, Callable[[Path, Dict[str, Any], bool], Bundle]] = {1: _load_v1, 2: _load_v2}


def load_bundle(path, verify_hashes: bool = True) -> Bundle:
    """Load and validate the bundle directory ``path``."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ModelError(f"{path} is not a model bundle (no {MANIFEST})",
                         hint="train one (`nomade train`) or point model.bundle at a bundle directory")
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError:
        raise ModelError(f"bundle {path}: {MANIFEST} is not valid JSON (truncated?)",
                         hint="roll back (`nomade models rollback`) or retrain") from None
    fv = manifest.get("format_version")
    if not isinstance(fv, int):
        raise ModelError(f"bundle {path}: manifest has no integer format_version", hint="retrain the model")
    if fv > max(LOADERS):
        raise ModelError(f"bundle format {fv} is newer than this nomade (supports {max(LOADERS)}); "
                         "upgrade nomade")
    if fv not in LOADERS:
        raise ModelError(f"bundle format {fv} is no longer supported", hint="retrain the model")
    return LOADERS[fv](path, manifest, verify_hashes)
