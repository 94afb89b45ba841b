"""submit_model.lua as published data: every name round-trips (three-digit escapes), the history
is keyed by keyed hashes (no user or job name in the file), a model that does not load is never
published, and the published file is readable by its owner (slurmctld's user) only.

Hostile text as the house style asks: names starting with digits after a control byte, control
bytes, arbitrary bytes and unicode, other users' names."""

import os
import re
import shutil
import stat
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nomade.errors import ModelError
from nomade.scoring import lua_check
from nomade.scoring.calibration import CalibrationMap
from nomade.scoring.lite_features import LiteHistory, lite_names
from nomade.scoring.registry import publish_lua
from nomade.train.lua_compile import KeyHash, compile_submit_lua, key_bytes, lua_bytes, lua_str

lupa = pytest.importorskip("lupa.lua51")

NAMES = st.one_of(st.text(max_size=12),
                  st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape")),
                  st.sampled_from(["2024_run", "1prep", "\x1f2", "\x009", "\n12", "bob\x1fbuggy"]))


def _trees(leaf=0.0):
    """A one-leaf tree ensemble over the lite schema with history."""
    return {"feature_names": lite_names(True),
            "trees": [{"feature": [-1], "value": [leaf], "threshold": [0.0], "nan_to_zero": [False],
                       "default_left": [False], "left": [-1], "right": [-1]}]}


def _history(pairs):
    h = LiteHistory()
    for i, (user, name) in enumerate(pairs):
        for j in range(i % 3 + 1):
            h.add_ended(user, name, (i + j) % 2, 100.0 * (i + 1), float(i * 10 + j))
    return h


def _compile(pairs, key=None, leaf=0.0):
    hist = _history(pairs)
    return hist, compile_submit_lua(_trees(leaf), hist, CalibrationMap.identity(), "v1", 0.5, True, key=key)


def _lua():
    return lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True)


# ---------------------------------------------------------------- item 3: escapes round-trip

@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_lua_bytes_round_trips_any_bytes(b):
    assert _lua().eval(lua_bytes(b)) == b


@given(st.text(max_size=32))
@settings(max_examples=300, deadline=None)
def test_lua_str_round_trips_any_text(s):
    assert _lua().eval(lua_str(s)) == key_bytes(s)


@pytest.mark.parametrize("s", ["\x1f2024_run", "\x1f1prep", "\x0012", "é1", "\t99"])
def test_digit_after_escape_regression(s):
    """Old escapes had variable width: "\\31" + "2024" read as \\312 (escape sequence too large)
    or as another byte (a wrong key)."""
    assert _lua().eval(lua_str(s)) == s.encode("utf-8")
    assert re.fullmatch(r'"(?:[ !#-\[\]-~]|\\\d{3})*"', lua_str(s))


@given(st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=6))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_compiled_history_keys_match_python(pairs):
    """Any user and job name (bytes or unicode, control bytes, leading digits): the compiled model
    loads in Lua 5.1 and finds the same history rows as Python."""
    hist, text = _compile(pairs)
    lua = _lua()
    M = lua.execute(text.encode())
    for user, name in pairs + [("nobody-here", "x")]:
        req = {"user": user, "name": name, "cpus": 1, "nodes": 1, "timelimit_s": 600,
               "submit_time": 1000, "recent_submits": 0}
        x_py = hist.features(req, True)
        lt = lua.table_from({**{k.encode(): v for k, v in req.items() if k not in ("user", "name")},
                             b"user": key_bytes(user), b"name": key_bytes(name)})
        x_lua = M.features(lt)
        assert len(x_py) == 20
        for i in range(9, len(x_py)):
            v, lv = x_py[i], x_lua[i + 1]
            assert (v != v and lv is None) or v == lv, (i, user, name, v, lv)


# ---------------------------------------------------------------- item 8: no names in the model

def test_history_keys_are_hashes_not_names():
    pairs = [("bob", "buggy"), ("alice", "2024_run"), ("carol", "secret-project-x")]
    _, text = _compile(pairs)
    for user, name in pairs:
        assert user not in text and name not in text
    rows = [ln for ln in text.splitlines() if ln.startswith(("U[", "N["))]
    assert len(rows) == 6 and all(re.match(r"[UN]\[\d+\] = \{", ln) for ln in rows)


def test_key_is_random_per_compile_and_fits_doubles():
    a, b = KeyHash.random(), KeyHash.random()
    assert a != b and a.of("bob\x1fbuggy") != b.of("bob\x1fbuggy")
    assert all(0 <= k.of(s) < 2 ** 52 for k in (a, b) for s in ("", "x" * 200, "\xff\x00"))
    _, t1 = _compile([("bob", "buggy")])
    _, t2 = _compile([("bob", "buggy")])
    assert re.findall(r"N\[(\d+)\]", t1) != re.findall(r"N\[(\d+)\]", t2)


def test_lua51_interpreter_hashes_like_python(tmp_path):
    """The plain lua5.1 binary (doubles only) computes the same keys."""
    lua51 = shutil.which("lua5.1")
    if lua51 is None:
        pytest.skip("lua5.1 not installed")
    from nomade.command import run_command
    key = KeyHash(67108858, 67108000, 67108836, 12345)  # the largest values: products near 2^52
    hist, text = _compile([("\xff" * 20, "9" * 30)], key=key, leaf=0.0)
    (tmp_path / "m.lua").write_text(text)
    script = ('local M = dofile(arg[1])\n'
              'local x = M.features({user = string.rep("\\195\\191", 20), name = string.rep("9", 30),'
              ' cpus = 1, nodes = 1, submit_time = 0, recent_submits = 0})\n'
              'io.write(tostring(x[11]))\n')
    (tmp_path / "run.lua").write_text(script)
    out = run_command([lua51, str(tmp_path / "run.lua"), str(tmp_path / "m.lua")], 30)
    assert out.stdout == "1"


# ---------------------------------------------------------------- item 3: refuse to publish

BROKEN = 'local M = {}\nlocal N = {}\nN["bob\\312024_run"] = {1,1,1,1,false}\nreturn M\n'


def _bundle(tmp_path, text):
    d = tmp_path / "bundle"
    d.mkdir(exist_ok=True)
    (d / "submit_model.lua").write_text(text)
    return d


@pytest.mark.parametrize("checker", ["luac", "lua", "lupa", "python"])
def test_check_names_the_reason(tmp_path, monkeypatch, checker):
    p = _bundle(tmp_path, BROKEN) / "submit_model.lua"
    if checker in ("luac", "lua") and shutil.which(checker + "5.1") is None:
        pytest.skip(f"{checker}5.1 not installed")
    real_which = shutil.which
    if checker != "luac":
        monkeypatch.setattr(lua_check.shutil, "which",
                            lambda name: real_which(name) if checker == "lua" and name == "lua5.1" else None)
    if checker == "python":
        import builtins
        real_import = builtins.__import__

        def no_lupa(name, *a, **kw):
            if name == "lupa":
                raise ImportError("no lupa")
            return real_import(name, *a, **kw)
        monkeypatch.setattr(builtins, "__import__", no_lupa)
    with pytest.raises(ModelError, match="escape sequence too large") as exc:
        lua_check.check_lua_model(p)
    assert "\n" not in str(exc.value)
    p.write_text(compile_submit_lua(_trees(), _history([("bob", "1prep")]), CalibrationMap.identity(),
                                    "v", 0.5, True))
    lua_check.check_lua_model(p)  # a generated model passes every checker


@pytest.mark.parametrize("text,reason", [
    ('return "\\300"', "escape sequence too large"),
    ('return "abc', "unfinished string"),
    ('return "\\q"', "invalid escape"),
])
def test_python_check(text, reason):
    assert reason in lua_check.python_check(text)
    assert lua_check.python_check('-- "\\999 in a comment\nreturn "\\255\\0001" .. [[\\999]] .. \'\\"\'') is None


def test_bytecode_and_oversized_refused(tmp_path, monkeypatch):
    p = tmp_path / "m.lua"
    p.write_bytes(b"\x1bLuaQ\x00")
    with pytest.raises(ModelError, match="bytecode"):
        lua_check.check_lua_model(p)
    monkeypatch.setattr(lua_check, "MAX_MODEL_BYTES", 10)
    p.write_text("return {} -- a comment")
    with pytest.raises(ModelError, match="over job_submit.lua's 10-byte limit"):
        lua_check.check_lua_model(p)


def test_publish_refuses_a_model_that_does_not_load(tmp_path):
    dest = tmp_path / "etc" / "submit_model.lua"
    dest.parent.mkdir()
    dest.write_text("return {} -- the working model\n")
    with pytest.raises(ModelError, match="does not load in Lua 5.1"):
        publish_lua(_bundle(tmp_path, BROKEN), str(dest))
    assert dest.read_text() == "return {} -- the working model\n"
    assert [p.name for p in dest.parent.iterdir()] == ["submit_model.lua"]


def test_train_publish_refuses_before_promoting(tmp_path):
    """`nomade train --publish`: pipeline.publish raises a one-line ModelError before touching the
    store or the registry."""
    from nomade.train.pipeline import publish
    res = SimpleNamespace(path=_bundle(tmp_path, BROKEN), manifest={}, version="v9")
    with pytest.raises(ModelError, match="escape sequence too large"):
        publish(None, tmp_path / "registry", res, 0.01, str(tmp_path / "out.lua"))
    assert not (tmp_path / "registry").exists() and not (tmp_path / "out.lua").exists()


# ---------------------------------------------------------------- item 8: file modes

GOOD = "return {format = 1, predict = function() return 0 end}\n"


def test_new_published_model_is_0600(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        calls = []
        monkeypatch.setattr(os, "chmod", lambda *a, **k: calls.append(a))
        dest = tmp_path / "etc" / "submit_model.lua"
        publish_lua(_bundle(tmp_path, GOOD), str(dest))
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600 and dest.read_text() == GOOD
    assert calls == []  # created with its mode, never chmod-ed after writing


def test_republish_keeps_owner_and_narrows_mode(tmp_path):
    dest = tmp_path / "submit_model.lua"
    dest.write_text("return {}\n")
    os.chmod(dest, 0o644)
    if os.geteuid() == 0:
        os.chown(dest, 65534, 65534)
    old = os.umask(0o077)
    try:
        publish_lua(_bundle(tmp_path, GOOD), str(dest))
    finally:
        os.umask(old)
    st_ = dest.stat()
    assert stat.S_IMODE(st_.st_mode) == 0o640 and dest.read_text() == GOOD
    if os.geteuid() == 0:
        assert (st_.st_uid, st_.st_gid) == (65534, 65534)


def test_lua_checker_compiles_but_never_runs_the_model(tmp_path, monkeypatch):
    if shutil.which("lua5.1") is None:
        pytest.skip("lua5.1 not installed")
    real_which = shutil.which
    monkeypatch.setattr(lua_check.shutil, "which", lambda name: real_which(name) if name == "lua5.1" else None)
    marker = tmp_path / "ran"
    p = _bundle(tmp_path, f'io.open("{marker}", "w"):close() return {{}}') / "submit_model.lua"
    lua_check.check_lua_model(p)
    assert not marker.exists()


@pytest.mark.train
def test_cli_train_publish_exits_non_zero_on_a_broken_model(tmp_path, monkeypatch):
    """`nomade train --publish` used to exit 0 with a model that does not load."""
    from click.testing import CliRunner

    from nomade.cli.main import cli
    from nomade.train import pipeline

    res = SimpleNamespace(path=_bundle(tmp_path, BROKEN), manifest={}, version="v9", promoted=False,
                          promote_reason="", reports={})
    monkeypatch.setattr(pipeline, "train_bundle", lambda *a, **k: res)
    out = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "train", "--publish"])
    assert out.exit_code != 0  # main() prints the ModelError as one line, exit 1
    assert isinstance(out.exception, ModelError), out.output
    assert "escape sequence too large" in str(out.exception) and "\n" not in str(out.exception)
