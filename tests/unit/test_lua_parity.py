"""submit_model.lua vs the Python reference (lite features + numpy trees + calibration map):
same features and same risk within 1e-6 on thousands of requests, with and without history;
the generated chunk also runs in the lua5.1 interpreter and follows the contract."""

import shutil
import subprocess

import numpy as np
import pytest

from gbdt_fixtures import lite_jobs

pytestmark = pytest.mark.train
lupa = pytest.importorskip("lupa")


def _build(with_history: bool, n: int = 3000):
    from nomade.scoring.lite_features import build_lite_rows, lite_names
    from nomade.train.lua_compile import compile_submit_lua
    from nomade.train.models.gbdt import GBDTModel
    from nomade.train.lite_model import isotonic_map

    jobs = lite_jobs(n, seed=11)
    X, hist = build_lite_rows(jobs, with_history)
    y = np.array([j["y"] for j in jobs], dtype=np.int8)
    a = n * 2 // 3
    m = GBDTModel(rounds=60).fit_arrays(X[:a], y[:a], lite_names(with_history), seed=7)
    cal = isotonic_map(m.predict_arrays(X[a:]), y[a:].astype(float))
    trees = m.dump_trees()
    text = compile_submit_lua(trees, hist, cal, "v-test", 0.3, with_history)
    return jobs, hist, trees, cal, text


def _requests(jobs, rng, n):
    reqs = []
    for j in rng.choice(len(jobs), n):
        r = {k: jobs[j][k] for k in ("user", "name", "cpus", "nodes", "gpus", "mem_mb", "mem_per_cpu",
                                    "timelimit_s", "submit_time")}
        r["submit_time"] = float(r["submit_time"] + rng.integers(0, 10 * 86400))
        r["recent_submits"] = int(rng.integers(0, 5))
        if rng.random() < 0.2:
            r["user"] = "newcomer"
        if rng.random() < 0.2:
            r["mem_per_cpu"] = True
        reqs.append(r)
    return reqs


def _lua_table(lua, d):
    t = lua.table()
    for k, v in d.items():
        if v is not None:
            t[k] = v
    return t


@pytest.mark.parametrize("with_history", [True, False])
def test_python_vs_lua_risk(with_history):
    from nomade.scoring.trees import TreeEnsemble, sigmoid

    jobs, hist, trees, cal, text = _build(with_history)
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    M = lua.execute(text)
    assert M.format == 1 and M.version == "v-test" and abs(M.threshold - 0.3) < 1e-12
    te = TreeEnsemble(trees)
    rng = np.random.default_rng(2)
    reqs = _requests(jobs, rng, 2500)
    worst = 0.0
    for r in reqs:
        x_py = hist.features(r, with_history)
        lt = _lua_table(lua, r)
        x_lua = M.features(lt)
        for i, v in enumerate(x_py):
            lv = x_lua[i + 1]
            assert (v != v and lv is None) or abs(v - lv) <= 1e-12 * max(1.0, abs(v)), \
                f"feature {te.feature_names[i]} differs: python {v} lua {lv} for {r}"
        p_py = cal.one(sigmoid(te.raw(np.array([x_py]))[0]))
        risk, reasons, suggestion = M.predict(lt)
        if len(reqs) and r is reqs[0] or risk >= M.threshold and rng.random() < 0.05:
            raw_py, c_py = te.contributions_one(x_py)
            raw_lua, c_lua = M.contributions(x_lua)
            assert abs(raw_py - raw_lua) < 1e-9
            assert max(abs(c_py[i] - c_lua[i + 1]) for i in range(len(c_py))) < 1e-9
        worst = max(worst, abs(risk - p_py))
        assert 0.0 <= risk <= 1.0
        n_reasons = len(reasons) if reasons is not None else 0
        assert n_reasons <= 3
    assert worst < 1e-6, f"submit_model.lua differs from Python by {worst}"


@pytest.mark.parametrize("table_block", [5000, 7])
def test_lua51_interpreter_runs_chunk(tmp_path, monkeypatch, table_block):
    """Also with the history tables split into many blocks (a big site: one block per 5000
    users and names), which Lua 5.1 parses more strictly than lupa's Lua."""
    from nomade.train import lua_compile

    lua51 = shutil.which("lua5.1")
    if lua51 is None:
        pytest.skip("lua5.1 not installed")
    monkeypatch.setattr(lua_compile, "TABLE_BLOCK", table_block)
    jobs, hist, trees, cal, text = _build(True, n=1500)
    assert text.count("(function()") == -(-(len(hist.users) + len(hist.names)) // table_block)
    (tmp_path / "submit_model.lua").write_text(text)
    u = jobs[-1]["user"]
    script = (f'local M = dofile("{tmp_path}/submit_model.lua")\n'
              f'local req = {{user="{u}", name="app3", cpus=4, nodes=1, timelimit_s=60, '
              f'submit_time={int(jobs[-1]["submit_time"]) + 60}, recent_submits=2, mem_per_cpu=false}}\n'
              'local risk, reasons, sugg = M.predict(req)\n'
              'print(string.format("%.12f", risk), #reasons, sugg or "-")\n'
              'local t0 = os.clock()\nfor i = 1, 2000 do M.predict(req) end\n'
              'print(string.format("%.2f", (os.clock() - t0) / 2000 * 1e6))\n')
    (tmp_path / "run.lua").write_text(script)
    out = subprocess.run([lua51, str(tmp_path / "run.lua")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    risk = float(out.stdout.split()[0])
    assert 0.0 <= risk <= 1.0
