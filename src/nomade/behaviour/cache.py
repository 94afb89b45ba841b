"""The warm index of ``nomade similarity --find-similar``: the behaviour vectors of every ended
job and the similarity index over them, kept between commands in private files of the data
directory (``<data_dir>/cache``, directories 0700, files 0600), so a look-up reads a few
memory-mapped arrays instead of every job from the store.

The cache is keyed by ``store.behaviour.content_mark`` (newest job and recorder summary, the
live ingestions' last moves), the cluster chosen and the feature list; it is rebuilt when the
key differs or it is older than ``MAX_AGE_S`` (updates in place and new node statistics do not
change the mark). Per cluster choice: ``similarity-<digest>.json`` names the key and the arrays
files ``similarity-<digest>-<key>-<array>.npy``, written first; the JSON is replaced last, then
older arrays files are removed. A caller who cannot read or write the directory (another
user's data directory) gets the index built in memory, as before.

``Warm`` keeps the arrays in memory in a long-running process (the nomade-why service, which
answers users' ``--find-similar``): a look-up whose job is in the index held is answered from it
while a newer index is built in the background; only a job it does not hold waits for a build.

Privacy is not the cache's business: the look-up (``similar.find_similar``) applies the same
rule to cached arrays as to fresh ones."""

import hashlib
import io
import json
import logging
import os
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..private_files import make_private_dirs, write_atomic
from .network import SimilarityIndex
from .vectors import NAMES, BehaviourSet

FORMAT = 1
MAX_AGE_S = 3600.0
ARRAYS = ("X", "Z", "bank", "mean", "std", "y", "health", "uid", "job_id", "cluster", "user", "outcome")
CODED = ("cluster", "user", "outcome")
_END = b"|"          # ends every stored job id (numpy's bytes arrays drop trailing NULs)

log = logging.getLogger(__name__)


class Column:
    """A text column as integer codes into its distinct values: ``col[i]`` is a value,
    ``col[rows]`` an object array, like the BehaviourSet's object arrays."""

    def __init__(self, codes: np.ndarray, values: Sequence[Optional[str]]):
        self.codes = codes
        self.values = np.empty(len(values), dtype=object)
        self.values[:] = list(values)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, rows):
        return self.values[self.codes[rows]]


class JobIds:
    """Job ids stored as UTF-8 bytes (each ending in ``_END``)."""

    def __init__(self, raw: np.ndarray):
        self.raw = raw
        self._order: Optional[np.ndarray] = None
        self._sorted: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.raw.shape[0])

    def sort(self) -> None:
        """Keep the ids sorted, so ``find`` is a binary search instead of a pass over them (for a
        long-running holder: the sort costs more than one pass)."""
        self._order = np.argsort(self.raw, kind="stable")
        self._sorted = self.raw[self._order]

    def find(self, job_id: str) -> np.ndarray:
        key = _encode(job_id)
        if self._order is None:
            return np.nonzero(self.raw == key)[0]
        if len(key) > self.raw.dtype.itemsize:      # longer than every stored id: none matches
            return np.empty(0, dtype=np.intp)
        lo, hi = np.searchsorted(self._sorted, key, "left"), np.searchsorted(self._sorted, key, "right")
        return np.sort(self._order[lo:hi])

    def __getitem__(self, rows):
        if np.ndim(rows) == 0:
            return _decode(self.raw[rows])
        out = np.empty(len(self.raw[rows]), dtype=object)
        out[:] = [_decode(v) for v in self.raw[rows]]
        return out


def _encode(job_id: str) -> bytes:
    return job_id.encode("utf-8", "surrogatepass") + _END


def _decode(raw: bytes) -> str:
    return bytes(raw)[:-1].decode("utf-8", "surrogatepass")


class CachedSet(BehaviourSet):
    """A BehaviourSet read from the cache: what the look-up needs (no ``extra``)."""

    def index_of(self, job_id: str, cluster: Optional[str] = None) -> Optional[int]:
        hits = self.job_id.find(job_id)
        if cluster is not None:
            hits = [i for i in hits if self.cluster[i] == cluster]
        return int(hits[0]) if len(hits) else None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def similarity_lookup(store, directory: Path, cluster: Optional[str] = None,
                      now: Optional[float] = None) -> Tuple[BehaviourSet, SimilarityIndex, str]:
    """(behaviour set, index, 'cache' or 'built') for ``cluster`` (None: all clusters): from the
    cache in ``directory`` when it is current, else read from ``store`` and built (and the cache
    written when the directory is ours to write)."""
    from .vectors import load
    now = time.time() if now is None else now
    key = cache_key(store, cluster)
    base = directory / f"similarity-{_digest(cluster)}"
    cached = _read(base, key, now)
    if cached is not None:
        return cached[0], cached[1], "cache"
    b = load(store, cluster)
    index = SimilarityIndex(b.X)
    try:
        _write(base, key, b, index, now)
    except OSError:
        return b, index, "built"       # not ours to write (another user's data directory): in memory
    written = _read(base, key, now)    # what the cache holds: its id look-up is a pass over bytes
    return (written[0], written[1], "built") if written is not None else (b, index, "built")


def cache_key(store, cluster: Optional[str]) -> str:
    """What a cached index must match: the store's content mark, the cluster, the features."""
    from ..store.behaviour import content_mark
    return _digest([FORMAT, NAMES, list(content_mark(store)), cluster])


class Warm:
    """Indexes held in memory per cluster choice, for a long-running process. ``get`` answers
    from the index held when it is current, or when it holds the job and is younger than
    ``MAX_AGE_S`` (a newer one is then built in the background, one build at a time); otherwise
    it builds (or reads from the cache directory) and waits."""

    def __init__(self, directory: Path, opener: Callable[[], AbstractContextManager]):
        self.directory = directory
        self._open = opener            # a read-only store, as a context manager
        self._held: Dict[Optional[str], Tuple[str, float, BehaviourSet, SimilarityIndex]] = {}
        self._build_lock = threading.Lock()
        self._refreshing: set = set()
        self._state_lock = threading.Lock()

    def get(self, job_id: str, cluster: Optional[str] = None) -> Tuple[BehaviourSet, SimilarityIndex]:
        with self._open() as store:
            key = cache_key(store, cluster)
        held = self._held.get(cluster)
        if held is not None and 0 <= time.time() - held[1] <= MAX_AGE_S:
            if held[0] == key:
                return held[2], held[3]
            if held[2].index_of(job_id, cluster) is not None:
                self._refresh_later(cluster)
                return held[2], held[3]
        return self._build(cluster)

    def warm_up(self, cluster: Optional[str] = None) -> None:
        """Build the index for ``cluster`` in the background (at the service's start)."""
        self._refresh_later(cluster)

    def _build(self, cluster: Optional[str]) -> Tuple[BehaviourSet, SimilarityIndex]:
        with self._build_lock:
            with self._open() as store:
                key = cache_key(store, cluster)
                held = self._held.get(cluster)
                if held is not None and held[0] == key and 0 <= time.time() - held[1] <= MAX_AGE_S:
                    return held[2], held[3]            # built by another caller while we waited
                b, index, _ = similarity_lookup(store, self.directory, cluster)
            if isinstance(b.job_id, JobIds):
                b.job_id.sort()
            self._held[cluster] = (key, time.time(), b, index)
            return b, index

    def _refresh_later(self, cluster: Optional[str]) -> None:
        with self._state_lock:
            if cluster in self._refreshing:
                return
            self._refreshing.add(cluster)
        threading.Thread(target=self._refresh, args=(cluster,), name="nomade-similar-index", daemon=True).start()

    def _refresh(self, cluster: Optional[str]) -> None:
        try:
            self._build(cluster)
        except Exception as exc:  # noqa: BLE001 - a failed background build is logged; requests still build
            log.warning("similarity index for %s not rebuilt: %s", cluster or "all clusters", exc)
        finally:
            with self._state_lock:
                self._refreshing.discard(cluster)


def _read(base: Path, key: str, now: float) -> Optional[Tuple[CachedSet, SimilarityIndex]]:
    try:
        meta = json.loads(Path(str(base) + ".json").read_text())
        if meta.get("key") != key or not (0 <= now - float(meta["built_at"]) <= MAX_AGE_S):
            return None
        a = {name: np.load(f"{base}-{key}-{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
        codes: Dict[str, List[Any]] = meta["values"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    n = int(a["X"].shape[0])
    if any(len(a[name]) != n for name in ARRAYS if name not in ("bank", "mean", "std")):
        return None
    b = CachedSet(Column(a["cluster"], codes["cluster"]), JobIds(a["job_id"]), Column(a["user"], codes["user"]),
                  a["uid"], Column(a["outcome"], codes["outcome"]), a["y"], a["health"],
                  np.full(0, np.nan), a["X"], {}, tuple(meta["names"]))
    return b, SimilarityIndex.from_arrays(a["mean"], a["std"], a["Z"], a["bank"], n)


def _codes(values: np.ndarray) -> Tuple[np.ndarray, List[Optional[str]]]:
    distinct: Dict[Any, int] = {}
    codes = np.fromiter((distinct.setdefault(v, len(distinct)) for v in values.tolist()),
                        dtype=np.int32, count=len(values))
    return codes, list(distinct)


def _write(base: Path, key: str, b: BehaviourSet, index: SimilarityIndex, now: float) -> None:
    make_private_dirs(base.parent)
    arrays: Dict[str, np.ndarray] = {
        "X": b.X, "Z": index.scaled.Z, "bank": index.bank, "mean": index.scaled.mean, "std": index.scaled.std,
        "y": b.y, "health": b.health, "uid": b.uid,
        "job_id": np.array([_encode(str(j)) for j in b.job_id.tolist()], dtype=bytes)}
    values: Dict[str, List[Optional[str]]] = {}
    for name in CODED:
        arrays[name], values[name] = _codes(getattr(b, name))
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        write_atomic(Path(f"{base}-{key}-{name}.npy"), buf.getvalue(), sync_dir=False)
    meta = {"format": FORMAT, "key": key, "built_at": now, "jobs": len(b), "names": list(b.names),
            "values": values}
    write_atomic(Path(str(base) + ".json"), json.dumps(meta).encode())
    prefix = base.name + "-"
    for old in base.parent.iterdir():
        if old.name.startswith(prefix) and not old.name.startswith(f"{prefix}{key}-"):
            try:
                os.unlink(old)
            except OSError:
                pass
