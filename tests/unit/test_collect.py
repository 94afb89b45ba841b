"""The monitoring core: the collector registry (built-ins, entry points, broken plugins), the
collect loop (a failing and a skipped collector never stop the others, every run recorded,
SIGHUP reloads), syscheck and its exit status, the CLI's one-line errors, the Python API."""

import os
import signal

import pytest

from nomade import config as config_mod
from nomade.cli.main import cli, run_cli
from nomade.collectors import registry as reg
from nomade.collectors.base import Collector, CollectorSkipped, Metric
from nomade.config import load_config
from nomade.monitor import Monitor, Signals, syscheck
from nomade.store import metrics as sm
from nomade.store.db import open_store


class Fine(Collector):
    name = "fine"
    interval_s = 10.0
    needs = "nothing"

    def collect(self, ctx):
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return [Metric.of("fine.count", ctx.state["n"], host=ctx.hostname, thing="a")]


class Boom(Collector):
    name = "boom"
    needs = "a working source"

    def collect(self, ctx):
        raise RuntimeError("source exploded\nsecond line")


class Absent(Collector):
    name = "absent"
    needs = "the absent driver"

    def collect(self, ctx):
        raise CollectorSkipped("no absent driver")


FOUND = {"absent": Absent, "boom": Boom, "fine": Fine}


class EP:
    """An importlib.metadata entry point, enough of it."""

    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path / "data"))


def cfg_file(tmp_path, text=""):
    p = tmp_path / "nomade.toml"
    p.write_text('cluster = "c1"\n' + text, encoding="utf-8")
    return str(p)


# ---------------------------------------------------------------- registry

def test_registry_has_the_builtins_and_entry_point_plugins():
    def broken():
        raise ImportError("No module named 'acme_missing'")
    found = reg.registry([EP("fine", "tests:Fine", lambda: Fine), EP("acme", "acme:Bad", broken),
                          EP("notone", "acme:thing", lambda: object)])
    assert found["fine"] is Fine
    assert "acme" not in found and "notone" not in found
    lines = reg.problems()
    assert any("plugin acme (acme:Bad) failed to load: ImportError: No module named 'acme_missing'" in ln
               for ln in lines)
    assert any("plugin notone" in ln and "not a nomade.collectors.base.Collector subclass" in ln for ln in lines)
    assert list(found) == sorted(found)


def test_a_real_installed_plugin_through_importlib_metadata(tmp_path, monkeypatch):
    dist = tmp_path / "acme_nomade-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nomade\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nomade.collectors]\ninstruments = acme_nomade:Instruments\n"
                                           "broken = acme_missing:Nothing\n")
    (tmp_path / "acme_nomade.py").write_text(
        "from nomade.collectors.base import Collector, Metric\n"
        "class Instruments(Collector):\n"
        "    name = 'instruments'\n"
        "    def collect(self, ctx):\n"
        "        return [Metric.of('instruments.waiting_count', 3, instrument='nmr')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = reg.registry()
    assert found["instruments"].__module__ == "acme_nomade"
    assert [ln for ln in reg.problems() if "plugin broken" in ln] == [
        "plugin broken (acme_missing:Nothing) failed to load: ModuleNotFoundError: "
        "No module named 'acme_missing'"]


def test_a_plugin_cannot_take_a_builtin_name(monkeypatch):
    monkeypatch.setattr(reg.base, "builtin", lambda: {"fine": Fine})

    class Other(Fine):
        pass
    found = reg.registry([EP("fine", "x:Other", lambda: Other)])
    assert found["fine"] is Fine and "is taken" in reg.problems()[0]


def test_a_broken_builtin_module_is_one_problem_line(monkeypatch):
    real = reg.importlib.import_module

    def imp(name):
        if name == "nomade.collectors.disk":
            raise SyntaxError("bad")
        return real(name)
    monkeypatch.setattr(reg.importlib, "import_module", imp)
    reg.registry([])
    assert any("nomade.collectors.disk failed to import: SyntaxError: bad" in ln for ln in reg.problems())


# ---------------------------------------------------------------- the loop

def test_one_cycle_runs_all_records_all_and_writes_the_fine_one(tmp_path):
    cfg = load_config(cfg_file(tmp_path), environ={})
    store = open_store(tmp_path / "s.db")
    logged = []
    mon = Monitor(cfg, FOUND, store, hostname="h1", clock=lambda: 1000.0, log=logged.append)
    results = {r.name: r for r in mon.cycle()}
    assert {n: r.state for n, r in results.items()} == {"absent": "skipped", "boom": "failed", "fine": "ok"}
    assert results["boom"].message == "RuntimeError: source exploded second line"
    health = sm.collector_health(store)
    assert health["fine"]["ok"] and health["fine"]["n_metrics"] == 1
    assert health["absent"] == {**health["absent"], "ok": False, "message": "no absent driver"}
    assert not health["boom"]["ok"] and health["boom"]["last_success"] is None
    assert sm.series(store, "fine.count", cluster="c1", host="h1") == [(1000.0, 1.0)]
    assert len(logged) == 2
    # not due yet at +5 s; due at +10 s (its interval), with its state kept between cycles
    assert mon.cycle(1005.0) == []
    assert [r.name for r in mon.cycle(1010.0)] == ["fine"]
    assert sm.series(store, "fine.count")[-1] == (1010.0, 2.0)
    assert len(logged) == 2                                   # unchanged states are not logged again


def test_selection_interval_override_and_disabled(tmp_path):
    cfg = load_config(cfg_file(tmp_path, "[collectors.boom]\nenabled = false\n"
                                         "[collectors.fine]\ninterval_s = 2\n"), environ={})
    mon = Monitor(cfg, FOUND, None)
    assert mon.names == ["absent", "fine"] and mon.interval("fine") == 2.0
    assert Monitor(cfg, FOUND, None, only=["boom"], interval_s=7).names == ["boom"]
    assert Monitor(cfg, FOUND, None, interval_s=7).interval("fine") == 7.0
    with pytest.raises(Exception, match="unknown collector nope \\(known: absent, boom, fine\\)"):
        Monitor(cfg, FOUND, None, only=["nope"])


def test_run_loop_reloads_on_sighup_flag_and_stops(tmp_path):
    path = cfg_file(tmp_path)
    cfg = load_config(path, environ={})
    now = [0.0]
    signals = Signals()
    mon = Monitor(cfg, {"fine": Fine}, open_store(tmp_path / "s.db"), clock=lambda: now[0])
    calls = []

    def sleep(s):
        calls.append(s)
        now[0] += s
        if len(calls) == 3:            # a SIGHUP after the first cycle's wait began
            with open(path, "a") as fh:
                fh.write("[collectors.fine]\ninterval_s = 2\n")
            signals.reload = True
        if now[0] >= 20:
            signals.stop = True

    cycles = mon.run(signals, reload=lambda: load_config(path, environ={}), sleep=sleep)
    assert mon.interval("fine") == 2.0 and cycles >= 4
    assert all(s <= 1.0 for s in calls)


def test_a_bad_file_on_reload_keeps_the_old_configuration(tmp_path):
    path = cfg_file(tmp_path)
    logged = []
    mon = Monitor(load_config(path, environ={}), {"fine": Fine}, None, log=logged.append)
    signals = Signals(reload=True)
    with open(path, "a") as fh:
        fh.write("[collectors.fine]\ninterval_s = -1\n")
    mon.run(signals, reload=lambda: load_config(path, environ={}), max_cycles=1)
    assert mon.interval("fine") == 10.0 and "not reloaded" in logged[0]


def test_signal_handlers_set_the_flags():
    from nomade.cli.collect_cmd import _signal_handlers
    before = signal.getsignal(signal.SIGHUP)
    signals = Signals()
    with _signal_handlers(signals):
        os.kill(os.getpid(), signal.SIGHUP)
        assert signals.reload and not signals.stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop
    assert signal.getsignal(signal.SIGHUP) == before


# ---------------------------------------------------------------- syscheck and the CLI

def test_syscheck_lines_and_required(tmp_path):
    cfg = load_config(cfg_file(tmp_path, "[collectors.absent]\nrequired = true\n"
                                         "[collectors.boom]\nenabled = false\n"), environ={})
    lines = {c.name: c for c in syscheck(cfg, FOUND)}
    assert lines["absent"].state == "skipped" and lines["absent"].missing_required
    assert lines["boom"].state == "disabled" and lines["fine"].state == "ok"
    assert lines["absent"].needs == "the absent driver"


def test_cli_syscheck_output_and_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reg, "registry", lambda entry_points=None: dict(FOUND))
    monkeypatch.setattr(reg, "problems", lambda: [])
    assert run_cli(cli, ["--config", cfg_file(tmp_path), "syscheck"]) == 0
    out = capsys.readouterr().out
    assert "absent  skipped: no absent driver" in out and "needs: the absent driver" in out
    assert "fix: provide what it needs on this host, or set [collectors.absent] enabled = false" in out
    assert "boom    FAILED: RuntimeError" in out and "fine    present" in out
    path = cfg_file(tmp_path, "[collectors.absent]\nrequired = true\n")
    assert run_cli(cli, ["--config", path, "syscheck"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nomade: error: required collectors cannot run here: absent (")
    assert run_cli(cli, ["--config", path, "syscheck", "-C", "fine", "--json"]) == 0   # only fine is judged
    assert '"missing_required": []' in capsys.readouterr().out
    monkeypatch.setattr(reg, "problems", lambda: ["plugin x (y:Z) failed to load: ImportError: no"])
    assert run_cli(cli, ["--config", cfg_file(tmp_path), "syscheck", "-C", "fine"]) == 1
    assert "problem: plugin x" in capsys.readouterr().out


def test_cli_collect_once_and_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reg, "registry", lambda entry_points=None: dict(FOUND))
    monkeypatch.setattr(reg, "problems", lambda: [])
    path = cfg_file(tmp_path)
    assert run_cli(cli, ["--config", path, "collect", "--once"]) == 0
    out = capsys.readouterr()
    assert "fine: ok: 1 metrics" in out.out and "absent: skipped: no absent driver" in out.out
    assert "boom: failed: RuntimeError: source exploded second line" in out.out
    assert run_cli(cli, ["--config", path, "collect", "--once", "-C", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nomade: error: unknown collector nope (known: absent, boom, fine)"]
    assert run_cli(cli, ["--config", path, "collect", "--interval", "0"]) == 1
    assert "--interval 0: must be a positive number" in capsys.readouterr().err


def test_python_api(tmp_path, monkeypatch):
    import nomade
    monkeypatch.setattr(reg, "registry", lambda entry_points=None: dict(FOUND))
    with nomade.Nomade(config=cfg_file(tmp_path)) as nm:
        assert nm.collectors["fine"].last_run is None
        runs = {r["name"]: r["state"] for r in nm.collect_once()}
        assert runs == {"absent": "skipped", "boom": "failed", "fine": "ok"}
        st = nm.collectors
        assert st["fine"].ok and st["fine"].interval_s == 10.0 and st["absent"].message == "no absent driver"
        assert nm.analysis.cluster == "c1"


def test_default_schedule_keeps_slurmctld_rpcs_per_cycle_at_three(tmp_path):
    """With the shipped intervals and phases, the daemon never runs sinfo (2 RPCs) and sdiag in
    the same cycle: squeue --json (1) + sinfo (2), or squeue + sdiag + sshare. --once runs all."""
    from nomade.collectors import nodes, queue, slurm_health
    from nomade.command import CommandResult
    from nomade.errors import SlurmCommandError
    cost = {"squeue": 1, "sinfo": 2, "sdiag": 1, "sshare": 1, "scontrol": 1}
    answers = {"squeue": '{"jobs": []}', "sinfo": "", "sshare": "",
               "sdiag": "Server thread count:  3\nAgent queue size:     0\n"}
    per_cycle = []
    calls = []

    def run(argv, timeout, **kw):
        calls.append(argv[0])
        if argv[0] not in answers:
            raise SlurmCommandError(list(argv), 1, "not in this test")
        return CommandResult(list(argv), 0, answers[argv[0]], "")
    now = [1000.0]
    cfg = load_config(cfg_file(tmp_path, "[collectors.nodes]\nhwmon = false\n"), environ={})
    found = {"queue": queue.QueueCollector, "nodes": nodes.NodesCollector,
             "slurm_health": slurm_health.SlurmHealthCollector}
    mon = Monitor(cfg, found, None, run=run, clock=lambda: now[0])
    signals = Signals()

    def sleep(s):
        now[0] += s
        if now[0] >= 1000 + 3600:
            signals.stop = True
    real_cycle = mon.cycle

    def cycle(**kw):
        calls.clear()
        out = real_cycle(**kw)
        per_cycle.append(sum(cost.get(c, 0) for c in calls))
        return out
    mon.cycle = cycle
    mon.run(signals, reload=lambda: cfg, sleep=sleep)
    assert len(per_cycle) >= 59 and max(per_cycle) <= 3, per_cycle
    assert per_cycle[:4] == [3, 3, 3, 2] and sum(per_cycle) / len(per_cycle) <= 2.65   # sshare: every 600 s
