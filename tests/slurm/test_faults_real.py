"""Faults on the real cluster. In every case every job is accepted and runs to COMPLETED, no node
drains, slurmctld keeps running, and one clear log line says what is wrong (slurmctld.log for
job_submit.lua, the hook log for the Prolog/Epilog)."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nomade_slurm_setup as S  # noqa: E402

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(os.geteuid() != 0, reason="the real-cluster tests run as root")]

GOOD_MODEL = (S.ROOT / "lua" / "test_model.lua").read_text()


@pytest.fixture(scope="module")
def cluster():
    S.reset_state()
    knobs = S.install(S.free_port())
    lua = Path(knobs["NOMADE_SLURM_JOB_SUBMIT_LUA"])
    # each case shows its own line; within a case (2 jobs in < 1 s) the limit still holds
    lua.write_text(lua.read_text().replace("local ERROR_LOG_EVERY_S = 300", "local ERROR_LOG_EVERY_S = 3"))
    S.cluster_up(dict(knobs, NOMADE_SLURM_SMOKE="0"))
    yield knobs
    S.MODEL.write_text(GOOD_MODEL)
    S.cluster_up({"NOMADE_SLURM_SMOKE": "0"})


def run_jobs(n=2, names=("risky-f", "plain-f")):
    # a drained node would leave every job pending: say so at once rather than after the timeout
    assert not any(s.startswith(("drain", "down", "fail")) for s in S.node_states().split()), S.node_report()
    ids = []
    for i in range(n):
        r = S.sbatch("alice", "-J", names[i % len(names)], "--wrap", "true")
        assert r.returncode == 0, r.stderr  # accepted
        ids.append(S.job_id_of(r))
    states = S.wait_ended(ids, timeout=120)
    assert all(states.get(j) == "COMPLETED" for j in ids), (states, S.node_report())
    assert S.slurmctld_alive()
    assert not any(s.startswith(("drain", "down", "fail")) for s in S.node_states().split()), S.node_report()
    return ids


def set_model(text: str) -> None:
    time.sleep(1.1)  # lfs mtime has 1-second resolution
    tmp = S.MODEL.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, S.MODEL)


@pytest.mark.parametrize("case,content,expect", [
    ("missing", None, "is missing; jobs pass without a risk check"),
    ("truncated", GOOD_MODEL[: len(GOOD_MODEL) // 2], "cannot load"),
    ("corrupt", "return {{{ this is not lua", "cannot load"),
    ("raises", "return {format = 1, version = 'bad', predict = function(r) error('kaboom') end}", "kaboom"),
    ("huge", GOOD_MODEL + "\n--" + "x" * (9 * 1024 * 1024), "over the"),
])
def test_bad_submit_model(cluster, case, content, expect):
    set_model(GOOD_MODEL)
    run_jobs(1)
    off = S.ctld_log_size()
    if content is None:
        S.MODEL.unlink()
    else:
        set_model(content)
    ids = run_jobs(2)
    log = S.ctld_log_since(off)
    lines = [ln for ln in log.splitlines() if "nomade:" in ln and "error" in ln.lower()]
    assert any(expect in ln for ln in lines), log[-3000:]
    assert len([ln for ln in lines if expect in ln]) == 1, lines  # one line, not one per job
    set_model(GOOD_MODEL)
    assert ids


def test_model_replaced_during_submissions(cluster):
    set_model(GOOD_MODEL)
    stop = threading.Event()

    def flip():
        i = 0
        while not stop.is_set():
            tmp = S.MODEL.with_suffix(".tmp")
            tmp.write_text(GOOD_MODEL.replace('"test-1"', f'"test-flip-{i}"') if i % 2 else "return {")
            os.replace(tmp, S.MODEL)
            i += 1
            time.sleep(0.3)
    t = threading.Thread(target=flip)
    t.start()
    try:
        run_jobs(8)
    finally:
        stop.set()
        t.join()
    set_model(GOOD_MODEL)


def test_store_locked(cluster):
    S.nomade("ingest", "hooks")
    conn = sqlite3.connect(str(S.DATA / "nomade.db"), timeout=1)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        run_jobs(2)
        r = S.nomade("--config", str(S.CONF), "ingest", "hooks", check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nomade: error:" in r.stderr
    finally:
        conn.rollback()
        conn.close()
    S.nomade("ingest", "hooks")


def test_broken_config(cluster):
    good = S.CONF.read_text()
    S.CONF.write_text("[hooks\nthis is not toml")
    try:
        ids = run_jobs(1)
        log = S.hook_log()
        assert f"nomade-prolog job={ids[0]}: config error, hook skipped:" in log
        assert "not valid TOML" in log
    finally:
        S.CONF.write_text(good)


def test_config_typo_breaks_only_itself(cluster):
    """A typo (an unknown key, a value of the wrong type) is skipped with one logged line; the
    rest of the file still applies, so the hooks log where they always do and score the job."""
    good = S.CONF.read_text()
    S.CONF.write_text("bogus_key = 1\n" + good.replace("[hooks]", "[hooks]\nkeep_days = \"forever\"", 1))
    try:
        ids = run_jobs(1)
        log = S.hook_log()
        lines = [ln for ln in log.splitlines() if f"nomade-prolog job={ids[0]}:" in ln]
        assert any("config problems, defaults used instead" in ln and "bogus_key" in ln
                   and "hooks.keep_days" in ln for ln in lines), lines
        assert any("start recorded" in ln for ln in lines), lines
    finally:
        S.CONF.write_text(good)


def test_onnxruntime_missing(cluster):
    """The bundle's ONNX ensemble under a hook Python without onnxruntime."""
    with S.without_onnxruntime():
        ids = run_jobs(1)
    log = S.hook_log()
    line = [ln for ln in log.splitlines() if f"nomade-prolog job={ids[0]}:" in ln][-1]
    assert "not scored" in line and "cannot import onnxruntime" in line, line


def test_data_dir_full(cluster):
    spool = S.DATA / "spool" / "hooks"
    spool.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        with open(spool / "filler", "wb") as fh:
            try:
                fh.write(b"x" * (1024 * 1024))
            except OSError:
                pass
        ids = run_jobs(1)
        log = S.hook_log()
        assert any(f"job={ids[0]}:" in ln and "No space left on device" in ln for ln in log.splitlines()), log[-2000:]
    finally:
        subprocess.run(["umount", str(spool)], check=False)
