"""lua/job_submit.lua under Lua 5.1 (lupa), with an emulated ``slurm`` table and job_desc.

Covers the fail-open contract: missing / truncated / broken / raising / slow / huge models, and
the bundle replaced between submissions: every call returns slurm.SUCCESS, errors are one
rate-limited log line, and messages reach the user only at or above the threshold."""

import os
import re
from pathlib import Path

import pytest

lupa = pytest.importorskip("lupa.lua51")

ROOT = Path(__file__).resolve().parents[2]
JOB_SUBMIT = ROOT / "lua" / "job_submit.lua"
TEST_MODEL = ROOT / "lua" / "test_model.lua"
NO_VAL = 4294967294
SUCCESS = 0


class Slurm:
    """The emulated slurmctld side: a Lua runtime with job_submit.lua loaded."""

    def __init__(self, model_path: Path, with_lfs: bool = False, settings=None):
        self.lua = lupa.LuaRuntime(unpack_returned_tuples=True)
        self.user_msgs, self.errors, self.infos = [], [], []
        text = JOB_SUBMIT.read_text()
        text = re.sub(r'local MODEL_PATH = "[^"]*"', f'local MODEL_PATH = "{model_path}"', text)
        for key, value in (settings or {}).items():
            text = re.sub(rf"local {key} = [^\n-]*", f"local {key} = {value} ", text)
        fmt = self.lua.eval("function(f, ...) return string.format(f, ...) end")
        slurm = self.lua.table(SUCCESS=SUCCESS, ERROR=-1)
        slurm.log_user = lambda f, *a: self.user_msgs.append(fmt(f, *a))
        slurm.log_error = lambda f, *a: self.errors.append(fmt(f, *a))
        slurm.log_info = lambda f, *a: self.infos.append(fmt(f, *a))
        self.lua.globals().slurm = slurm
        if with_lfs:
            def attributes(path, *_):
                try:
                    st = os.stat(path)
                except OSError:
                    return None
                return self.lua.table(modification=int(st.st_mtime_ns), size=st.st_size)
            self.lua.execute("package.preload.lfs = function() return nomade_test_lfs end")
            self.lua.globals().nomade_test_lfs = self.lua.table(attributes=attributes)
        self.lua.execute(text)
        self.g = self.lua.globals()

    def submit(self, uid=1001, **fields):
        desc = dict(user_name="alice", name="job", time_limit=NO_VAL, min_cpus=1, min_nodes=1,
                    min_mem_per_cpu=None, min_mem_per_node=None)
        desc.update(fields)
        env = desc.pop("environment", None)
        t = self.lua.table(**{k: v for k, v in desc.items() if v is not None})
        if env is not None:
            t.environment = self.lua.table(**env)
        rc = self.g.slurm_job_submit(t, self.lua.table(), uid)
        assert rc == SUCCESS
        return rc


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "submit_model.lua"
    p.write_text(TEST_MODEL.read_text())
    return p


def test_risky_job_gets_message_safe_job_none(model):
    s = Slurm(model)
    s.submit(name="ok-job", time_limit=60)
    assert s.user_msgs == []
    s.submit(name="risky-1", time_limit=60)
    assert len(s.user_msgs) == 1
    msg = s.user_msgs[0]
    assert msg.startswith("nomade: HIGH failure risk (")
    assert "jobs named like this one failed before" in msg
    assert "--time=00:10:00" in msg
    assert s.errors == []
    assert any("loaded model test-1" in i for i in s.infos)


def test_reasons_capped_and_memory_per_cpu(model):
    s = Slurm(model)
    s.submit(name="risky", time_limit=1, min_mem_per_cpu=4096, min_cpus=4)
    msg = s.user_msgs[0]
    assert "time limit 60 s" in msg and "large memory request (16384 MiB)" in msg


def test_req_fields_from_job_desc(model):
    s = Slurm(model)
    internals = s.g.nomade_internals()
    desc = s.lua.table(user_name="bob", name=None, time_limit=NO_VAL, min_cpus=NO_VAL,
                       min_nodes=2, min_mem_per_node=2.0 ** 63 + 100, min_mem_per_cpu=NO_VAL,
                       tres_per_node="gres:gpu:a100:2", partition=None)
    req = internals.build_req(desc, 1002, 1000)
    assert req.user == "bob" and req.name == ""
    assert req.timelimit_s is None and req.cpus is None and req.nodes == 2
    assert req.mem_mb is None and req.mem_per_cpu is False
    assert req.gpus == 2 and req.partition is None and req.account is None
    assert req.recent_submits == 0
    req2 = internals.build_req(s.lua.table(user_name="bob", time_limit=30, min_mem_per_node=2000,
                                           account="phys"), 1002, 1001)
    assert req2.timelimit_s == 1800 and req2.mem_mb == 2000 and req2.mem_per_cpu is False
    assert req2.account == "phys" and req2.recent_submits == 1


def test_recent_submit_counter_is_bounded(model):
    s = Slurm(model, settings={"MAX_USERS": 50})
    internals = s.g.nomade_internals()
    for i in range(200):
        internals.build_req(s.lua.table(user_name=f"u{i}"), 1, 1000)
    _, n = internals.counters()
    assert n <= 50


def test_quiet_by_comment_and_env(model):
    s = Slurm(model)
    s.submit(name="risky", comment="nomade:quiet")
    s.submit(name="risky", environment={"NOMADE_QUIET": "1"})
    assert s.user_msgs == []
    s.submit(name="risky", environment={"NOMADE_QUIET": "0"})
    assert len(s.user_msgs) == 1


def test_missing_model_passes_and_logs_once(tmp_path):
    s = Slurm(tmp_path / "nope.lua")
    for _ in range(5):
        s.submit(name="risky")
    assert s.user_msgs == []
    assert len(s.errors) == 1 and "missing" in s.errors[0]


@pytest.mark.parametrize("content,expect", [
    ("local M = {} M.format = 1 M.predict = function(r) return 0.9, {}, nil end retu", "cannot load"),
    ("return 42", "does not return a table"),
    ("error('boom at load')", "failed to run"),
    ("return {format = 2, predict = function() return 1 end}", "format 2"),
    ("", "does not return a table"),
])
def test_broken_models_pass(tmp_path, content, expect):
    p = tmp_path / "m.lua"
    p.write_text(content)
    s = Slurm(p)
    s.submit(name="risky")
    s.submit(name="risky")
    assert s.user_msgs == []
    assert len(s.errors) == 1 and expect in s.errors[0], s.errors


def test_truncated_real_model(tmp_path):
    p = tmp_path / "m.lua"
    text = TEST_MODEL.read_text()
    p.write_text(text[: len(text) // 2])
    s = Slurm(p)
    s.submit(name="risky")
    assert s.user_msgs == [] and len(s.errors) == 1


def test_model_that_raises_is_rate_limited(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, version = 'bad', threshold = 0.5,"
                 " predict = function(r) error('kaboom') end}")
    s = Slurm(p)
    for _ in range(20):
        s.submit(name="risky")
    assert s.user_msgs == []
    assert len(s.errors) == 1 and "kaboom" in s.errors[0] and "uid 1001" in s.errors[0]


def test_model_that_loops_is_aborted(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, version = 'slow', predict = function(r) while true do end end}")
    s = Slurm(p)
    s.submit(name="risky")
    assert "steps" in s.errors[0]
    # the hook is removed afterwards: ordinary code keeps running
    assert s.lua.eval("(function() local n = 0 for i = 1, 1000000 do n = n + 1 end return n end)()") == 1000000


def test_model_touching_globals_cannot_reach_os(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, predict = function(r) os.execute('true') return 1 end}")
    s = Slurm(p)
    s.submit(name="x")
    assert s.user_msgs == [] and "raised" in s.errors[0]


def test_non_number_risk(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, predict = function(r) return 'high' end}")
    s = Slurm(p)
    s.submit()
    assert "non-number" in s.errors[0]


def test_huge_model_refused(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text(TEST_MODEL.read_text() + "\n--" + "x" * 4096)
    s = Slurm(p, settings={"MAX_MODEL_BYTES": 1024})
    s.submit(name="risky")
    assert s.user_msgs == [] and "over the 1024-byte limit" in s.errors[0]


@pytest.mark.parametrize("with_lfs", [True, False])
def test_model_replaced_between_submissions(tmp_path, model, with_lfs):
    s = Slurm(model, with_lfs=with_lfs, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0})
    s.submit(name="risky")
    assert len(s.user_msgs) == 1
    # a broken replacement keeps the old model
    model.write_text("return {")
    s.submit(name="risky")
    assert len(s.user_msgs) == 2 and len(s.errors) == 1
    # a new good model (threshold above every risk) is picked up
    model.write_text(TEST_MODEL.read_text().replace("M.threshold = 0.5", "M.threshold = 0.9999")
                     .replace('"test-1"', '"test-2"') + "\n")
    s.submit(name="risky")
    assert len(s.user_msgs) == 2
    assert any("test-2" in i for i in s.infos)


def test_threshold_override(model):
    s = Slurm(model, settings={"THRESHOLD": "0.01"})
    s.submit(name="plain", time_limit=60)
    assert len(s.user_msgs) == 1 and "MODERATE" in s.user_msgs[0]


def test_modify_passes_through(model):
    s = Slurm(model)
    assert s.g.slurm_job_modify(s.lua.table(), s.lua.table(), s.lua.table(), 0) == SUCCESS


def test_real_lua51_binary_loads_script(tmp_path, model):
    """The script is plain Lua 5.1: the Debian interpreter compiles it too."""
    import shutil
    import subprocess
    lua = shutil.which("lua5.1")
    if lua is None:
        pytest.skip("lua5.1 not installed")
    r = subprocess.run([lua, "-e", "slurm = {SUCCESS = 0, log_info = function() end,"
                        " log_error = function() end, log_user = function() end}",
                        str(JOB_SUBMIT)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_rate_limit_is_per_kind_of_error(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, version = 'bad', predict = function(r) error('kaboom') end}")
    s = Slurm(p, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0})
    s.submit()
    s.submit()
    p.write_text("return {format = 1, predict = function(r) return 'high' end}\n-- changed")
    s.submit()
    s.submit()
    assert len(s.errors) == 2 and "kaboom" in s.errors[0] and "non-number" in s.errors[1]
