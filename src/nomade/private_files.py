"""How nomade creates files: private by default, whole files atomically.

Directories nomade creates get 0700 and files 0600, with those modes given at creation (never a
chmod afterwards, which would leave a window). Directories that already exist, made by an admin
with other modes, are left as they are. ``write_atomic`` is the one way a whole file is written
(spool records, risk notes, bundles, the published Lua model, install-slurm's files, pointers)."""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each with mode 0700 (raises OSError)."""
    missing: List[Path] = []
    p = Path(path)
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue          # made meanwhile by someone else: theirs, left as it is


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates the file 0600 (the file descriptor is close-on-exec)."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)


def private_opener(path: str, flags: int) -> int:
    """For ``open(path, mode, opener=private_opener)``: a file it creates is 0600."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE,
                 owner: Optional[Tuple[int, int]] = None, sync_dir: bool = True) -> Path:
    """Write ``data`` as ``path`` so that a reader sees the old file or the new one, never half,
    and nobody ever sees it with a looser mode or another owner than the final ones (the rule is
    ``atomic_file``'s). Raises OSError; the temp file is removed."""
    with atomic_file(path, mode=mode, owner=owner, sync_dir=sync_dir) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return Path(path)


@contextmanager
def atomic_file(path: Path, *, mode: int = PRIVATE_FILE_MODE, owner: Optional[Tuple[int, int]] = None,
                sync_dir: bool = True) -> Iterator[int]:
    """The one rule for writing a whole file, as a block that writes to the yielded descriptor
    (streams that do not fit in memory: ``os.fdopen(fd, "wb", closefd=False)``): a temp file
    beside ``path`` (``.<name>.<pid>.tmp``; readers skip dot-names) created O_EXCL|O_NOFOLLOW with
    ``mode``, given ``owner`` (uid, gid; -1 keeps one) and re-moded while still empty (the umask
    may have narrowed the mode); when the block ends: fsync, rename over ``path``, and fsync of
    the directory unless ``sync_dir`` is False (a caller that renames a whole directory afterwards
    syncs that instead). When the block raises, the temp file is removed and ``path`` untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)            # a dead writer's, perhaps with another mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
                 mode)
    try:
        try:
            if owner is not None and owner != (-1, -1):
                os.fchown(fd, *owner)
            if os.fstat(fd).st_mode & 0o7777 != mode:
                os.fchmod(fd, mode)          # the umask narrowed it; still empty
            yield fd
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
