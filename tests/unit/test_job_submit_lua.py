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
                return self.lua.table(modification=int(st.st_mtime), size=st.st_size, ino=st.st_ino)
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
    assert msg.startswith("nomade: CRITICAL failure risk (88%)")   # 0.88 >= 0.8 (no M.levels: fallback)
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
    assert len(s.user_msgs) == 1 and s.user_msgs[0].startswith("nomade: LOW failure risk (5%)")


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


@pytest.mark.parametrize("with_lfs", [True, False])
def test_a_new_kind_of_model_file_error_is_not_hidden_by_an_older_one(tmp_path, with_lfs):
    """Missing, then too big, then not Lua, then bytecode, then an invalid table: each is a new
    kind of error and gets its own line at once; the same kind again stays rate-limited."""
    p = tmp_path / "m.lua"
    s = Slurm(p, with_lfs=with_lfs, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0, "MAX_MODEL_BYTES": 4096})
    s.submit()
    p.write_text("--" + "x" * 5000)
    s.submit()
    p.write_text("return {")
    s.submit()
    p.write_bytes(b"\x1bLua garbage")
    s.submit()
    p.write_text("return {format = 1}")
    s.submit()
    p.write_text("return {format = 1} -- still invalid, same kind")
    s.submit()
    assert len(s.errors) == 5, s.errors
    for line, expect in zip(s.errors, ["is missing", "over the 4096-byte limit", "cannot load",
                                       "is bytecode", "predict()"]):
        assert line.startswith("nomade: ") and expect in line, (expect, line)


def test_rate_limited_kind_counts_what_it_suppressed(tmp_path):
    p = tmp_path / "m.lua"
    p.write_text("return {format = 1, version = 'bad', predict = function(r) error('kaboom') end}")
    s = Slurm(p, settings={"ERROR_LOG_EVERY_S": 60})
    s.lua.execute("nomade_test_now = 1000; os.time = function() return nomade_test_now end")
    for _ in range(3):
        s.submit()
    assert len(s.errors) == 1
    s.lua.execute("nomade_test_now = 1061")
    s.submit()
    assert len(s.errors) == 2 and s.errors[1].endswith("(2 similar errors suppressed)"), s.errors


def test_error_outside_the_model_is_its_own_kind(tmp_path, model):
    """An error in job_submit.lua itself (here: slurm.log_user raising) is logged even while the
    model's errors of another kind are rate-limited."""
    good = model.read_text()
    model.write_text("return {format = 1, version = 'bad', predict = function(r) error('kaboom') end}")
    s = Slurm(model, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0})
    s.submit(name="risky")
    s.submit(name="risky")
    model.write_text(good)
    s.lua.execute("slurm.log_user = function() error('log_user broke') end")
    s.submit(name="risky")
    model.write_text("return {format = 1, version = 'bad2', predict = function(r) error('boom2') end}")
    s.submit(name="risky")
    assert len(s.errors) == 2, s.errors
    assert "kaboom" in s.errors[0] and "slurm_job_submit for uid 1001" in s.errors[1]
    assert "log_user broke" in s.errors[1]


# ---------------------------------------------------------------- the model file is untrusted data

def _hostile(tmp_path, body):
    p = tmp_path / "m.lua"
    p.write_text(body)
    return p


def _host_strings_intact(s):
    """job_submit.lua's own string calls (and the runtime's) still use the real functions."""
    assert s.lua.eval('(string.find("abcdef", "cd", 1, true))') == 3
    assert s.lua.eval('("abc"):upper()') == "ABC"
    assert s.lua.eval('("x"):rep(3)') == "xxx"
    n_msgs = len(s.user_msgs)
    s.submit(name="risky", comment="please nomade:quiet")  # is_quiet uses string.find
    assert len(s.user_msgs) == n_msgs


@pytest.mark.parametrize("body,expect", [
    ("while true do end", "took over"),
    ("local t = {} for i = 1, 1e12 do t[#t + 1] = 'x' .. i end return t", "took over"),
])
def test_model_that_loops_at_load_is_aborted(tmp_path, body, expect):
    s = Slurm(_hostile(tmp_path, body), settings={"MAX_LOAD_STEPS": 200000})
    s.submit(name="risky")
    s.submit(name="risky")
    assert s.user_msgs == [] and len(s.errors) == 1 and expect in s.errors[0], s.errors
    assert "failed to run" in s.errors[0]
    assert s.lua.eval("(function() local n = 0 for i = 1, 300000 do n = n + 1 end return n end)()") == 300000


def test_pcall_cannot_defeat_the_step_cap(tmp_path):
    p = _hostile(tmp_path, """
local catch = pcall or xpcall or (coroutine and coroutine.resume) or function(f) return f() end
return {format = 1, predict = function(r)
  for i = 1, 1e9 do catch(function() while true do end end) end
  return 0.99, {}, nil
end}""")
    s = Slurm(p)
    s.submit(name="risky")
    assert s.user_msgs == [] and "took over 200000 steps" in s.errors[0], s.errors


FORBIDDEN = ["getmetatable", "setmetatable", "rawset", "rawget", "pcall", "xpcall", "load",
             "loadstring", "loadfile", "dofile", "require", "module", "io", "os", "debug",
             "coroutine", "package", "setfenv", "getfenv", "collectgarbage", "newproxy", "_G",
             "print"]


def test_model_environment_holds_only_pure_functions(tmp_path):
    checks = "\n".join(f'if {n} ~= nil then found[#found + 1] = "{n}" end' for n in FORBIDDEN)
    checks += '\nif string.dump or string.find or string.gsub or string.gmatch or string.match then' \
              ' found[#found + 1] = "string patterns or dump" end' \
              '\nif ("").dump or ("").find or ("").gsub then found[#found + 1] = "string methods" end' \
              '\nif math.random or math.randomseed then found[#found + 1] = "math.random" end'
    p = _hostile(tmp_path, "local found = {}\n" + checks + """
return {format = 1, predict = function(r)
  local again = {}
  if ("").find or getmetatable then again[1] = "in predict" end
  return 0.99, {"found:" .. table.concat(found, ",") .. ";" .. table.concat(again, ",")}, nil
end}""")
    s = Slurm(p)
    s.submit(name="x")
    assert s.errors == [] and len(s.user_msgs) == 1
    assert "found:;." in s.user_msgs[0], s.user_msgs[0]


@pytest.mark.parametrize("attack", [
    # the old sandbox handed out getmetatable: the real string table through the metatable
    "getmetatable('').__index.find = function() return nil end",
    # assignment through a string value
    "local s = '' s.find = function() return nil end",
    # the model's own string table: a copy, changing it changes only the model
    "string.find = function() return nil end string.format = function() return 'x' end",
    # method calls reach a bounded copy without find, and cannot change it
    "local f = ('').sub local ok = ('abc'):find('b')",
])
def test_string_metatable_attacks_do_not_reach_the_host(tmp_path, attack):
    p = _hostile(tmp_path, """
return {format = 1, version = "evil", predict = function(r)
  """ + attack + """
  return 0.99, {}, nil
end}""")
    s = Slurm(p)
    s.submit(name="x")
    s.submit(name="x")
    _host_strings_intact(s)
    assert s.lua.eval("getmetatable('').__index == string") is True


def test_string_rep_is_bounded_also_as_a_method(tmp_path):
    for call in ("string.rep('x', 2^31)", "('x'):rep(2^31)", "string.rep('xxxx', 20000)"):
        p = _hostile(tmp_path, "return {format = 1, predict = function(r) local s = %s return 0.99 end}" % call)
        s = Slurm(p)
        s.submit(name="x")
        assert s.user_msgs == [] and "string.rep result over 65536 bytes" in s.errors[0], (call, s.errors)
        _host_strings_intact(s)


def test_memory_cap_aborts_a_growing_model(tmp_path):
    p = _hostile(tmp_path, """return {format = 1, predict = function(r)
  local t = {}
  for i = 1, 1e9 do t[i] = {i, i, i, i} end
end}""")
    s = Slurm(p, settings={"MAX_MODEL_STEPS": "1e12", "MAX_MODEL_KB": 4096})
    s.submit(name="x")
    assert s.user_msgs == [] and "used over 4096 KiB of memory" in s.errors[0], s.errors
    s.lua.execute("collectgarbage()")
    assert s.lua.eval("collectgarbage('count')") < 4096 + 2048


def test_bytecode_model_refused(tmp_path):
    raw = lupa.LuaRuntime(encoding=None)
    code = raw.eval(b'string.dump(loadstring("return {format = 1, predict = function() return 0.99, {}, nil end}"))')
    assert code[:1] == b"\x1b"
    p = tmp_path / "m.lua"
    p.write_bytes(code)
    s = Slurm(p)
    s.submit(name="x")
    assert s.user_msgs == [] and len(s.errors) == 1 and "bytecode" in s.errors[0]


@pytest.mark.parametrize("ret", [
    "'0.9', {}, nil",            # a string risk (tonumber() used to accept it)
    "0/0, {}, nil",              # NaN
    "1.5, {}, nil",
    "math.huge, {}, nil",
    "-0.1, {}, nil",
    "0.9, 'a reason', nil",      # reasons not a table
    "0.9, {1, 2}, nil",          # not strings
    "0.9, {'a', 'b', 'c', 'd'}, nil",  # more than 3
    "0.9, {string.rep('r', 301)}, nil",  # too long
    "0.9, {[1] = 'a', [3] = 'c'}, nil",  # not an array
    "0.9, {x = 'a'}, nil",
    "0.9, {}, {}",               # suggestion not a string
    "0.9, {}, string.rep('s', 400)",
])
def test_invalid_results_are_refused(tmp_path, ret):
    p = _hostile(tmp_path, "return {format = 1, version = 'w', predict = function(r) return %s end}" % ret)
    s = Slurm(p)
    s.submit(name="x")
    s.submit(name="x")
    assert s.user_msgs == [] and len(s.errors) == 1 and "model w returned" in s.errors[0], s.errors


@pytest.mark.parametrize("body,expect", [
    ("return {format = 1, threshold = 7, predict = function() return 1 end}", "threshold outside 0..1"),
    ("return {format = 1, version = string.rep('v', 400), predict = function() return 1 end}", "version"),
    ("return {format = 1, version = {}, predict = function() return 1 end}", "version"),
    ("return {format = 1, levels = 0.5, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.3, 0.6}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.3, 0.6, 0.8, 0.9}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.6, 0.3, 0.8}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.3, 0.3, 0.8}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.3, 0.6, 1.5}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {-0.1, 0.6, 0.8}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0/0, 0.6, 0.8}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {'0.3', 0.6, 0.8}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {0.3, 0.6, 0.8, x = 1}, predict = function() return 1 end}", "levels"),
    ("return {format = 1, levels = {[1] = 0.3, [2] = 0.6, [3.5] = 0.8}, predict = function() return 1 end}",
     "levels"),
])
def test_model_fields_checked_at_load(tmp_path, body, expect):
    s = Slurm(_hostile(tmp_path, body))
    s.submit(name="x")
    assert s.user_msgs == [] and len(s.errors) == 1 and expect in s.errors[0], s.errors


def test_huge_error_message_is_truncated(tmp_path):
    p = _hostile(tmp_path, "return {format = 1, predict = function() error(string.rep('e', 60000), 0) end}")
    s = Slurm(p)
    s.submit(name="x")
    assert len(s.errors) == 1 and len(s.errors[0]) < 500


@pytest.mark.parametrize("with_lfs", [True, False])
def test_same_size_replacement_is_reloaded(tmp_path, model, with_lfs):
    """Without lfs the old check compared sizes only: a new model of the same size was never
    loaded. Publishing renames a new file in (a new inode), often within the same second."""
    s = Slurm(model, with_lfs=with_lfs, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0})
    s.submit(name="risky")
    assert len(s.user_msgs) == 1
    text = TEST_MODEL.read_text()
    new = text.replace("M.threshold = 0.5", "M.threshold = 1.0").replace('"test-1"', '"test-9"')
    assert len(new) == len(text)
    st = model.stat()
    tmp = model.with_name("new.lua")
    tmp.write_text(new)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, model)
    s.submit(name="risky")
    assert len(s.user_msgs) == 1 and any("test-9" in i for i in s.infos), s.infos


def test_file_read_at_most_every_reload_interval(model):
    s = Slurm(model, settings={"RELOAD_CHECK_S": 3600})
    s.lua.execute("local o = io.open; nomade_opens = 0;"
                  " io.open = function(...) nomade_opens = nomade_opens + 1 return o(...) end")
    for _ in range(20):
        s.submit(name="risky")
    assert s.g.nomade_opens == 1 and len(s.user_msgs) == 20


def test_model_that_does_not_load_is_logged_once(tmp_path):
    """The old compiler's output for a job name starting with a digit: `\\312` is no byte."""
    p = _hostile(tmp_path, 'local N = {}\nN["bob\\312024_run"] = {1, 1, 1, 1, false}\nreturn {}\n')
    s = Slurm(p, settings={"RELOAD_CHECK_S": 0, "LFS_CHECK_S": 0})
    for _ in range(5):
        s.submit(name="x")
    assert len(s.errors) == 1 and "escape sequence too large" in s.errors[0]


def test_compiled_model_runs_in_the_sandbox(tmp_path):
    """A generated model (hashed history keys, string.format, table.sort) works under the
    sandbox; a job name starting with a digit finds its history."""
    from nomade.scoring.calibration import CalibrationMap
    from nomade.scoring.lite_features import LiteHistory, lite_names
    from nomade.train.lua_compile import compile_submit_lua

    hist = LiteHistory()
    for i in range(5):
        hist.add_ended("alice", "2024_run", 0, 7200.0, float(i))
    # one split on the user's p90 runtime (x[15]): known and above 1 s -> high risk
    tree = {"feature": [14, -1, -1], "value": [0.0, -3.0, 3.0], "threshold": [1.0, 0.0, 0.0],
            "nan_to_zero": [False] * 3, "default_left": [True] * 3, "left": [1, -1, -1],
            "right": [2, -1, -1]}
    trees = {"feature_names": lite_names(True), "trees": [tree]}
    text = compile_submit_lua(trees, hist, CalibrationMap.identity(), "gen-1", 0.5, True)
    p = tmp_path / "m.lua"
    p.write_text(text)
    s = Slurm(p)
    s.submit(name="2024_run", time_limit=30)
    assert s.errors == [] and len(s.user_msgs) == 1, (s.errors, s.user_msgs)
    assert "suggestion: --time=02:25:00 (similar jobs needed 2h00m)" in s.user_msgs[0]
    s.submit(name="other", time_limit=30, user_name="bob")
    assert len(s.user_msgs) == 1


def test_unreadable_model_says_so(tmp_path):
    p = tmp_path / "m.lua"
    s = Slurm(p)
    s.lua.execute("io.open = function(path) return nil, path .. ': Permission denied' end")
    s.submit(name="x")
    assert len(s.errors) == 1 and "Permission denied (it must be readable by SlurmUser)" in s.errors[0]


def test_level_cutoffs_come_from_the_model(tmp_path):
    """job_submit.lua names the level with the model's M.levels (checked, copied at load)."""
    text = TEST_MODEL.read_text().replace("M.threshold = 0.5", "M.threshold = 0.5\nM.levels = {0.1, 0.9, 0.95}")
    p = tmp_path / "submit_model.lua"
    p.write_text(text)
    s = Slurm(p)
    s.submit(name="risky-1", time_limit=60)          # 0.88: HIGH on this scale, CRITICAL on the default
    assert s.user_msgs and s.user_msgs[0].startswith("nomade: MODERATE failure risk (88%)"), s.user_msgs


def test_model_cannot_change_its_levels_after_load(tmp_path):
    body = ("local M = {format = 1, threshold = 0.0, levels = {0.3, 0.6, 0.8}}\n"
            "function M.predict(r) M.levels[1] = 0.99; M.levels[3] = 0.0; return 0.5, {}, nil end\n"
            "return M")
    p = _hostile(tmp_path, body)
    s = Slurm(p)
    s.submit(name="x")
    s.submit(name="x")
    assert [m.split(" failure")[0] for m in s.user_msgs] == ["nomade: MODERATE"] * 2, s.user_msgs
