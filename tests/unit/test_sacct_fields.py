"""Parsers for sacct field values (nomade.slurm.sacct_fields)."""

import time

import pytest

from nomade.slurm import sacct_fields as f


def test_time_is_local_time_to_epoch(monkeypatch):
    expected = time.mktime((2026, 11, 21, 13, 54, 7, 0, 0, -1))
    assert f.parse_time("2026-11-21T13:54:07") == expected
    # second call hits the caches and gives the same answer
    assert f.parse_time("2026-11-21T13:54:07") == expected
    assert f.parse_time("2026-11-21T13:59:59") == expected + 5 * 60 + 52


@pytest.mark.parametrize("text", ["Unknown", "None", ""])
def test_time_unknown_is_none(text):
    assert f.parse_time(text) is None


@pytest.mark.parametrize("text", ["2026-13-45T99:00:00", "yesterday", "2026-11-21 13:54:07",
                                  "2026-11-21T13:5x:07", "2026-11-21T13:61:00"])
def test_bad_time_raises(text):
    with pytest.raises(ValueError, match="bad time"):
        f.parse_time(text)


@pytest.mark.parametrize("text,seconds", [
    ("1-02:03:04", 93784), ("02:03:04", 7384), ("02:03", 123), ("00:00.509", 0.509),
    ("00:12.283", 12.283), ("10-00:00:00", 864000), ("", None),
])
def test_durations(text, seconds):
    got = f.parse_duration(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize("text", ["UNLIMITED", "abc", "1:2:3:4", "00:75:00"])
def test_bad_duration_raises(text):
    with pytest.raises(ValueError, match="bad duration"):
        f.parse_duration(text)


@pytest.mark.parametrize("text,expected", [
    ("UNLIMITED", (None, "UNLIMITED")), ("Partition_Limit", (None, "Partition_Limit")),
    ("INVALID", (None, "INVALID")), ("1-00:00:00", (86400, "1-00:00:00")),
    ("00:01:00", (60, "00:01:00")), ("02:03", (123, "02:03")), ("", (None, None)),
])
def test_timelimit(text, expected):
    assert f.parse_timelimit(text) == expected


@pytest.mark.parametrize("text,unit,expected", [
    ("500M", "M", (500.0, None)), ("23000M", "M", (23000.0, None)), ("1.5G", "M", (1536.0, None)),
    ("2T", "M", (2 * 1024.0 ** 2, None)), ("3324K", "K", (3324 / 1024, None)),
    ("4000Mn", "M", (4000.0, 0)), ("2000Mc", "M", (2000.0, 1)), ("0", "K", (0.0, None)),
    ("", "M", (None, None)), ("1024", "M", (1024.0, None)),
])
def test_memory(text, unit, expected):
    assert f.parse_mem(text, unit) == expected


@pytest.mark.parametrize("text", ["12Q", "M", "-5M", "lots"])
def test_bad_memory_raises(text):
    with pytest.raises(ValueError, match="bad memory"):
        f.parse_mem(text)


def test_exit_codes():
    assert f.parse_exit("1:0") == (1, 0)
    assert f.parse_exit("0:9") == (0, 9)
    assert f.parse_exit("0:125") == (0, 125)
    assert f.parse_exit("") == (None, None)
    for bad in ("1", "a:b", "1:"):
        with pytest.raises(ValueError, match="bad exit code"):
            f.parse_exit(bad)


def test_states():
    assert f.parse_state_field("CANCELLED by 1234") == ("CANCELLED", 1234, 1)
    assert f.parse_state_field("COMPLETED") == ("COMPLETED", None, 1)
    assert f.parse_state_field("RUNNING") == ("RUNNING", None, 0)
    assert f.parse_state_field("PENDING") == ("PENDING", None, 0)
    assert f.parse_state_field("REQUEUED") == ("REQUEUED", None, 0)
    for s in ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"):
        assert f.parse_state_field(s) == (s, None, 1)
    with pytest.raises(ValueError, match="unknown job state"):
        f.parse_state_field("EXPLODED")


@pytest.mark.parametrize("text,expected", [
    ("123", ("123", None, None, None, None, None)),
    ("123.batch", ("123", "batch", None, None, None, None)),
    ("123.extern", ("123", "extern", None, None, None, None)),
    ("123.0", ("123", "0", None, None, None, None)),
    ("123_4", ("123_4", None, 123, "4", None, None)),
    ("123_4.batch", ("123_4", "batch", 123, "4", None, None)),
    ("123_[5-9]", ("123_[5-9]", None, 123, "[5-9]", None, None)),
    ("123_[5-9%2]", ("123_[5-9%2]", None, 123, "[5-9%2]", None, None)),
    ("123+0", ("123+0", None, None, None, 123, 0)),
    ("123+1.0", ("123+1", "0", None, None, 123, 1)),
])
def test_job_ids(text, expected):
    assert tuple(f.parse_job_id(text)) == expected


@pytest.mark.parametrize("text", ["", "abc", "12a", "123_", "1|2"])
def test_bad_job_ids(text):
    with pytest.raises(ValueError, match="JobID"):
        f.parse_job_id(text)


def test_tres_gpus():
    assert f.tres_gpus("billing=4,cpu=4,gres/gpu=2,mem=8G,node=1") == 2
    assert f.tres_gpus("cpu=4,gres/gpu:a100=1,gres/gpu:v100=2,mem=8G") == 3
    assert f.tres_gpus("cpu=4,gres/gpu=2,gres/gpu:a100=2") == 2
    assert f.tres_gpus("billing=1,cpu=1,mem=500M,node=1") is None
    assert f.tres_gpus("") is None


def test_format_time_round_trips():
    t = f.parse_time("2026-03-01T08:09:10")
    assert f.format_time(t) == "2026-03-01T08:09:10"
