"""The node-local spool: append, rotation, size bound with drop counter, write failures."""

import errno
import json

import pytest

from nomade.recorder import spool as spool_mod
from nomade.recorder.spool import SpoolWriter, list_segments, read_counters, read_segment


def recs(n, start=0):
    return [{"v": 1, "type": "sample", "job_id": str(i), "node": "n", "ts": float(i), "pad": "x" * 200}
            for i in range(start, start + n)]


def all_records(d):
    return [r for seg in list_segments(d) for _i, r, _raw in read_segment(seg) if r]


def test_append_and_seq_survive_restart(tmp_path):
    w = SpoolWriter(tmp_path, max_bytes=1 << 20)
    assert w.write(recs(3)) == 3
    w.close()
    w2 = SpoolWriter(tmp_path, max_bytes=1 << 20)
    w2.write(recs(2, 3))
    w2.close()
    got = all_records(tmp_path)
    assert [r["seq"] for r in got] == [1, 2, 3, 4, 5]
    assert len(list_segments(tmp_path)) == 2            # a restart starts a new segment
    assert read_counters(tmp_path)["written_records"] == 5


def test_rotation_and_bound_drop_oldest_with_counter(tmp_path):
    w = SpoolWriter(tmp_path, max_bytes=8192, segment_bytes=2048)
    for i in range(40):
        w.write(recs(2, 2 * i))
    w.close()
    segs = list_segments(tmp_path)
    assert sum(p.stat().st_size for p in segs) <= 8192 + 2048 + 1024
    c = read_counters(tmp_path)
    kept = len(all_records(tmp_path))
    assert c["dropped_records"] > 0 and c["dropped_segments"] > 0
    assert kept + c["dropped_records"] == 80
    assert all_records(tmp_path)[-1]["job_id"] == "79"  # the newest are kept


def test_enospc_drops_and_counts_never_raises(tmp_path, monkeypatch):
    w = SpoolWriter(tmp_path, max_bytes=1 << 20)
    w.write(recs(1))
    real_open = open

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[:7])                     # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(spool_mod, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    w._fh.close()
    w._fh = None
    assert w.write(recs(2, 1)) == 0
    assert w.write(recs(2, 3)) == 0
    assert w.counters.write_errors == 2 and w.counters.dropped_records == 4
    assert "No space left" in w.counters.last_error
    monkeypatch.undo()
    assert w.write(recs(1, 5)) == 1                     # space is back: writing resumes
    w.close()
    ids = [r["job_id"] for r in all_records(tmp_path)]
    assert ids == ["0", "5"]                            # torn lines never merge with good ones


def test_unwritable_directory_never_raises(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(spool_mod, "open", denied, raising=False)
    w = SpoolWriter(tmp_path / "spool", max_bytes=1 << 20)
    assert w.write(recs(1)) == 0
    assert w.counters.dropped_records == 1


def test_fsync_interval(tmp_path, monkeypatch):
    now = [0.0]
    calls = []
    monkeypatch.setattr(spool_mod.os, "fsync", lambda fd: calls.append(fd))
    w = SpoolWriter(tmp_path, max_bytes=1 << 20, fsync_interval_s=60, mono=lambda: now[0])
    w.write(recs(1))
    now[0] = 30
    w.write(recs(1))
    assert calls == []
    now[0] = 61
    w.write(recs(1))
    assert len(calls) == 1


def test_torn_last_line_is_reported_not_parsed(tmp_path):
    seg = tmp_path / "seg-000000001.jsonl"
    seg.write_text(json.dumps({"a": 1}) + "\n" + '{"b": ')
    got = list(read_segment(seg))
    assert got[0][1] == {"a": 1} and got[1][1] is None and not got[1][2].endswith("\n")


def test_one_writer_per_spool(tmp_path):
    from nomade.errors import NomadeError
    a = SpoolWriter(tmp_path, max_bytes=1 << 20)
    a.acquire()
    with pytest.raises(NomadeError, match="another nomade record"):
        SpoolWriter(tmp_path, max_bytes=1 << 20).acquire()
    a.write(recs(1))
    a.close()
    before = read_counters(tmp_path)
    SpoolWriter(tmp_path, max_bytes=1 << 20).close()        # a writer that never wrote
    assert read_counters(tmp_path) == before


@pytest.fixture
def open_umask():
    import os
    old = os.umask(0o022)          # the usual umask, under which files come out 0644
    yield
    os.umask(old)


def _mode(p):
    import os
    return os.stat(p).st_mode & 0o777


def test_spool_files_and_new_directory_are_private(tmp_path, open_umask):
    d = tmp_path / "new" / "spool"
    w = SpoolWriter(d, max_bytes=1 << 20, segment_bytes=4096)
    w.acquire()
    for i in range(3):
        w.write(recs(40, 40 * i))     # several segments, counters saved on rotation
    w.close()
    assert _mode(d) == 0o700 and _mode(tmp_path / "new") == 0o700
    names = sorted(p.name for p in d.iterdir())
    assert "writer.lock" in names and "counters.json" in names and len(list_segments(d)) > 1
    assert {n: _mode(d / n) for n in names} == {n: 0o600 for n in names}


def test_spool_files_are_created_private_not_chmodded(tmp_path, monkeypatch, open_umask):
    import os
    chmods = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: chmods.append(a))
    monkeypatch.setattr(os, "fchmod", lambda *a, **k: chmods.append(a))
    w = SpoolWriter(tmp_path / "spool", max_bytes=1 << 20)
    w.acquire()
    w.write(recs(2))
    w.close()
    assert chmods == []
    assert all(_mode(p) == 0o600 for p in (tmp_path / "spool").iterdir())


def test_existing_spool_directory_keeps_its_mode(tmp_path, open_umask):
    import os
    os.chmod(tmp_path, 0o755)
    w = SpoolWriter(tmp_path, max_bytes=1 << 20)
    w.acquire()
    w.write(recs(1))
    w.close()
    assert _mode(tmp_path) == 0o755 and _mode(tmp_path / "writer.lock") == 0o600
