"""Scratch hygiene: the bounded walk (hostile names, symlinks, budgets, a hung filesystem), the
stale-data scan per user, the Epilog's leftover check (identity from SLURM_JOB_UID, always exit
0, within its budget) and the leftover metrics made from the loaded end records."""

import json
import os
import threading
import time

import pytest

from nomade.collectors import scratch
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.hooks import epilog
from nomade.hooks.harness import run_hook
from nomade.hooks.spool import iter_records, parse_record
from nomade.ingest.hook_spool import load_hook_spool
from nomade.store.db import open_store

DAY = 86400.0
NOW = 1_750_000_000.0
OLD = NOW - 40 * DAY
UNKNOWN_UID = 54321          # no passwd entry: kept as a number
OTHER_UID = 4242
HOSTILE = [b"new\nline", b"tab\tand\x1b[31mescape", b"\xff\xfe invalid utf-8", b"-rf",
           b" leading space", b"x" * 254, "caf\u00e9 \u2603".encode(), b"quote\"s'", b"back\\slash"]


def _file(path, size: int = 4096, mtime: float = OLD, uid: int = None) -> None:
    with open(path, "wb") as f:
        f.write(b"\1" * size)
    os.utime(path, (mtime, mtime))
    if uid is not None:
        os.chown(path, uid, -1)


@pytest.fixture
def tree(tmp_path):
    """Stale files with hostile names (bytes), one fresh file, links to elsewhere."""
    root = tmp_path / "scratch"
    (root / "a" / "b").mkdir(parents=True)
    broot = os.fsencode(str(root))
    for name in HOSTILE:
        _file(os.path.join(broot, name), uid=os.getuid())
        os.mkdir(os.path.join(broot, b"d" + name))
        _file(os.path.join(broot, b"d" + name, name), uid=UNKNOWN_UID)
    _file(root / "a" / "b" / "fresh.dat", mtime=NOW - 3600)
    _file(root / "a" / "b" / "other.dat", uid=OTHER_UID)
    outside = tmp_path / "outside"
    outside.mkdir()
    _file(outside / "secret.dat")
    os.symlink(str(outside), str(root / "link-to-outside"))
    os.symlink(str(outside / "secret.dat"), str(root / "link-to-file"))
    return root


def test_walk_counts_hostile_names_and_never_follows_links(tree):
    stale = lambda st: max(st.st_mtime, st.st_atime) < NOW - 30 * DAY  # noqa: E731
    res = scratch.scan_tree(str(tree), scratch.Budget(10, 10000), stale)
    assert res.opened and res.done and not res.truncated and res.errors == 0
    assert res.by_uid[os.getuid()][0] == len(HOSTILE)                 # the fresh one is not stale
    assert res.by_uid[UNKNOWN_UID][0] == len(HOSTILE)
    assert res.by_uid[OTHER_UID][0] == 1
    assert res.files == 2 * len(HOSTILE) + 1                           # not secret.dat, no links
    assert res.by_uid[UNKNOWN_UID][1] == len(HOSTILE) * 4096           # allocated bytes (du)


def test_a_symlink_as_the_starting_path_is_not_followed(tree, tmp_path):
    res = scratch.scan_tree(str(tree / "link-to-outside"), scratch.Budget(10, 100), lambda st: True)
    assert not res.opened and res.files == 0


def test_the_walk_stays_on_one_filesystem():
    """/dev holds other filesystems (/dev/shm, /dev/pts here): none of their directories is
    offered for descent, let alone entered."""
    offered = []
    scratch.scan_tree("/dev", scratch.Budget(5, 20000), lambda st: False,
                      descend=lambda st: offered.append(st.st_dev) or True)
    assert set(offered) <= {os.stat("/dev").st_dev}


def test_entry_budget_truncates_without_raising(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        (root / f"f{i}").write_bytes(b"")
    res = scratch.scan_tree(str(root), scratch.Budget(10, 50), lambda st: True)
    assert res.truncated and res.entries == 50 and res.files == 50 and res.done


def test_time_budget_truncates(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}").write_bytes(b"")
    ticks = iter(range(1000))
    res = scratch.scan_tree(str(root), scratch.Budget(5, 10 ** 6, clock=lambda: next(ticks)), lambda st: True)
    assert res.truncated and res.entries == 4          # clock 0 at start; 1,2,3,4 pass; 5 stops


def test_a_hung_walk_is_given_up_and_not_started_twice(monkeypatch, tmp_path):
    release, started = threading.Event(), []

    def stuck(path, budget, counts, descend=None, result=None):
        started.append(path)
        release.wait(10)
        return result
    monkeypatch.setattr(scratch, "scan_tree", stuck)
    pending = {}
    t0 = time.monotonic()
    status, res = scratch.timed_scan(str(tmp_path), scratch.Budget(1, 10), lambda st: True, None, 0.1, pending)
    assert status == "hung" and time.monotonic() - t0 < 2
    status, _ = scratch.timed_scan(str(tmp_path), scratch.Budget(1, 10), lambda st: True, None, 0.1, pending)
    assert status == "hung" and len(started) == 1
    release.set()


@pytest.mark.parametrize("template,expect", [
    ("/tmp/%u", "/tmp/alice"), ("/local/%U/%j", "/local/1001/42"), ("/x/100%%", "/x/100%"),
    ("/x/%q", "/x/%q"), ("relative/%u", None), ("%u", None), ("/x/%", "/x/%"),
])
def test_expand_path(template, expect):
    assert scratch.expand_path(template, 1001, "alice", "42") == expect


def test_expand_path_without_a_login_is_skipped():
    assert scratch.expand_path("/tmp/%u", 1001, None, "42") is None
    assert scratch.expand_path("/tmp/%U", 1001, None, "42") == "/tmp/1001"


# ---- the collector ---------------------------------------------------------------------------

def _ctx(store=None, **settings):
    return CollectContext(settings=settings, run=None, now=lambda: NOW, hostname="login1",
                          cluster="lab", store=store)


def test_collector_skips_in_one_line_without_paths():
    with pytest.raises(CollectorSkipped, match="no scratch paths configured"):
        scratch.ScratchCollector().collect(_ctx())


def test_stale_scan_per_user_with_unknown_uid_as_number(tree, tmp_path):
    got = scratch.ScratchCollector().collect(_ctx(paths=[str(tree), str(tmp_path / "missing")]))
    by = {(m.metric, m.label("path"), m.label("uid")): m for m in got}
    p = str(tree)
    assert by[("scratch.responding", p, "")].value == 1
    assert by[("scratch.responding", str(tmp_path / "missing"), "")].value == 0
    unknown = by[("scratch.stale_files", p, str(UNKNOWN_UID))]
    assert unknown.value == len(HOSTILE) and unknown.label("user") == str(UNKNOWN_UID)
    assert unknown.host == "login1"
    mine = by[("scratch.stale_bytes", p, str(os.getuid()))]
    assert mine.label("user") == "root" and mine.value == len(HOSTILE) * 4096
    assert by[("scratch.all_stale_files", p, "")].value == 2 * len(HOSTILE) + 1
    assert by[("scratch.scan_truncated", p, "")].value == 0
    assert all(m.label("path").isprintable() for m in got)


def test_stale_scan_says_truncated(tree):
    got = scratch.ScratchCollector().collect(_ctx(paths=[str(tree)], max_entries=5))
    by = {m.metric: m.value for m in got if not m.label("uid")}
    assert by["scratch.scan_truncated"] == 1 and by["scratch.scan_entries"] == 5


def test_a_control_byte_in_a_configured_path_never_reaches_a_label(tmp_path):
    odd = tmp_path / "odd\x1bpath"
    odd.mkdir()
    got = scratch.ScratchCollector().collect(_ctx(paths=[str(odd)]))
    assert {m.label("path") for m in got} == {str(tmp_path / "odd?path")}


# ---- the Epilog's check ----------------------------------------------------------------------

def _hook_env(tmp_path, **extra):
    env = {"NOMADE_DATA_DIR": str(tmp_path / "data"), "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
           "NOMADE_HOOKS_LOG_FILE": str(tmp_path / "hooks.log"),
           "SLURM_JOB_ID": "42", "SLURM_JOB_USER": "someone-else", "SLURM_JOB_UID": str(OTHER_UID),
           "SLURM_JOB_GID": "100", "SLURMD_NODENAME": "n1", "SLURM_JOB_EXIT_CODE2": "0:0"}
    env.update(extra)
    return env


def _end_record(tmp_path):
    recs = [parse_record(raw) for _, raw in iter_records(tmp_path / "data" / "spool" / "hooks")]
    assert [r["kind"] for r in recs] == ["end"]
    return recs[0]


def test_epilog_counts_the_jobs_uid_files_and_exits_0(tree, tmp_path):
    local = tmp_path / "local" / str(OTHER_UID)
    local.mkdir(parents=True)
    _file(local / "left\nover", size=8192, uid=OTHER_UID)
    _file(local / "not-mine", uid=UNKNOWN_UID)
    env = _hook_env(tmp_path, NOMADE_COLLECTORS_SCRATCH_EPILOG_PATHS=f"{tree},{tmp_path}/local/%U,/nonexistent/%j")
    t0 = time.monotonic()
    assert run_hook("epilog", epilog.epilog_body, env) == 0
    assert time.monotonic() - t0 < 3
    rec = _end_record(tmp_path)
    # tree: other.dat sits in a/b, directories root owns: not entered; local/4242: one file
    assert rec["scratch"] == {"files": 1, "bytes": 8192, "truncated": False, "hung": False,
                              "entries": rec["scratch"]["entries"], "paths": 2}
    assert rec["job"]["uid"] == OTHER_UID
    line = (tmp_path / "hooks.log").read_text().splitlines()[-1]
    assert "end recorded" in line and "1 files (8.2 kB) left in scratch" in line


def test_epilog_identity_is_slurmds_uid_not_the_user_text(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    _file(local / "f", uid=OTHER_UID)
    env = _hook_env(tmp_path, NOMADE_COLLECTORS_SCRATCH_EPILOG_PATHS=str(local),
                    SLURM_JOB_UID=str(UNKNOWN_UID), SLURM_JOB_USER=str(OTHER_UID))
    run_hook("epilog", epilog.epilog_body, env)
    assert _end_record(tmp_path)["scratch"]["files"] == 0


def test_epilog_without_paths_records_no_check(tmp_path):
    run_hook("epilog", epilog.epilog_body, _hook_env(tmp_path))
    assert "scratch" not in _end_record(tmp_path)


def test_epilog_budget_truncates_and_still_records(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    os.chown(local, OTHER_UID, -1)
    for i in range(200):
        _file(local / f"f{i}", size=0, uid=OTHER_UID)
    env = _hook_env(tmp_path, NOMADE_COLLECTORS_SCRATCH_EPILOG_PATHS=str(local),
                    NOMADE_COLLECTORS_SCRATCH_EPILOG_MAX_ENTRIES="30")
    assert run_hook("epilog", epilog.epilog_body, env) == 0
    check = _end_record(tmp_path)["scratch"]
    assert check["truncated"] and check["files"] == 30 and not check["hung"]
    assert "30 or more files" in (tmp_path / "hooks.log").read_text()


def test_epilog_gives_up_on_a_hung_filesystem_within_its_budget(monkeypatch, tmp_path):
    release = threading.Event()

    def stuck(path, budget, counts, descend=None, result=None):
        release.wait(20)
        return result
    monkeypatch.setattr(scratch, "scan_tree", stuck)
    env = _hook_env(tmp_path, NOMADE_COLLECTORS_SCRATCH_EPILOG_PATHS=f"{tmp_path},{tmp_path}",
                    NOMADE_COLLECTORS_SCRATCH_EPILOG_BUDGET_S="0.3")
    t0 = time.monotonic()
    assert run_hook("epilog", epilog.epilog_body, env) == 0
    took = time.monotonic() - t0
    release.set()
    assert took < 0.3 + scratch.EPILOG_GRACE_S + 0.8
    check = _end_record(tmp_path)["scratch"]
    assert check["hung"] and check["truncated"]
    assert "a scratch path hung" in (tmp_path / "hooks.log").read_text()


# ---- leftover metrics from the loaded end records ------------------------------------------

def test_leftover_metrics_newest_check_per_user_and_node(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    for i in range(3):
        _file(local / f"f{i}", uid=OTHER_UID)
    env = _hook_env(tmp_path, NOMADE_COLLECTORS_SCRATCH_EPILOG_PATHS=str(local), SLURM_CLUSTER_NAME="lab")
    run_hook("epilog", epilog.epilog_body, env)                          # job 42: 3 files
    (local / "f2").unlink()
    run_hook("epilog", epilog.epilog_body, dict(env, SLURM_JOB_ID="43"))  # job 43, newer: 2 files
    run_hook("epilog", epilog.epilog_body, dict(env, SLURM_JOB_ID="44", SLURMD_NODENAME="n2\x1b"))
    spool = tmp_path / "data" / "spool" / "hooks"
    (spool / "0000000000001-9-end-1.json").write_text(json.dumps(
        {"format": 1, "kind": "end", "job_id": "9", "written_at": time.time(), "job": {"uid": "4242", "node": "n3"},
         "scratch": {"files": 5, "bytes": 1}}))                          # uid as text: skipped
    with open_store(tmp_path / "s.db") as store:
        load_hook_spool(store, spool, cluster="lab")
        ctx = CollectContext(settings={"epilog_paths": [str(local)]}, run=None, now=time.time,
                             hostname="login1", cluster="lab", store=store)
        got = scratch.ScratchCollector().collect(ctx)
        assert scratch.ScratchCollector().collect(
            CollectContext(settings={"epilog_paths": ["/x"]}, run=None, now=time.time, cluster="other",
                           store=store)) == []
    by = {(m.metric, m.host, m.label("user")): m.value for m in got}
    assert by[("scratch.leftover_files", "n1", "")] == 2
    assert by[("scratch.leftover_bytes", "n1", "")] == 2 * 4096
    assert by[("scratch.leftover_users", "n1", "")] == 1
    assert by[("scratch.leftover_files", "n2?", "")] == 2
    assert by[("scratch.leftover_files", "", str(OTHER_UID))] == 4                # both nodes, not job 42
    assert not any(h == "n3" for _, h, _ in by)


def test_scratch_leftover_rule_matches_the_per_node_series_only():
    from nomade.alerts.defaults import default_rules
    from nomade.config import load_config
    rules = {r.name: r for r in default_rules(load_config(environ={}))}
    assert rules["scratch_leftover"].metric == "scratch.leftover_bytes"
    assert dict(rules["scratch_leftover"].labels) == {"user": "~^$"}
