"""The scoring path (bundle loading, features from history tables, onnxruntime, tree
contributions) never imports the training stack."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["torch", "lightgbm", "sklearn", "xgboost", "torch_geometric", "onnx", "onnxmltools",
         "skl2onnx", "matplotlib"]

SCRIPT = r"""
import json, sys
from nomade.scoring.bundle import load_bundle
from nomade.scoring.score import Scorer
import nomade.scoring.series  # the recorder's series model: runtime-safe too
import nomade.scoring.lua_verdict, nomade.why_ondemand  # nomade-why's on-demand scoring too
b = load_bundle(sys.argv[1])
sc = Scorer(b)
req = {"user": "u1", "name": "app3", "cpus": 4, "nodes": 1, "timelimit_s": 3600,
       "submit_time": 1.75e9, "start_time": 1.75e9 + 600, "node_list": "n[1-2]"}
risks = [sc.score([req], stage=s)[0].risk for s in sorted(sc.primary)]
print(json.dumps({"risk": min(risks), "risk_max": max(risks), "stages": sorted(sc.primary),
                  "mods": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def _check(bundle: Path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert 0.0 <= res["risk"] <= res["risk_max"] <= 1.0
    bad = sorted(set(HEAVY) & set(res["mods"]))
    assert not bad, f"scoring imported {bad}"
    return res


def test_default_bundle_scores_without_heavy_imports():
    from nomade.scoring.registry import default_bundle_dir

    d = default_bundle_dir()
    if not (d / "manifest.json").is_file():
        pytest.skip("no default bundle in this checkout")
    _check(d)


@pytest.mark.train
def test_site_bundle_scores_without_heavy_imports(tmp_path):
    from gbdt_fixtures import make_store
    from nomade.config import load_config
    from nomade.train.pipeline import train_bundle

    store = make_store(tmp_path, n=2500)
    cfg = load_config(None, {"data_dir": str(tmp_path), "train.folds": 0})
    res = train_bundle(store, cfg, cfg.registry_dir, rounds=25)
    store.close()
    assert _check(res.path)["stages"] == ["start", "submit"]   # the ONNX ensemble of each stage


def test_training_commands_say_when_the_train_extra_is_missing(monkeypatch, tmp_path, capsys):
    """On a slim install `nomade train` is one clear line, not an ImportError half-way."""
    import importlib.util

    from nomade.cli.main import cli, run_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lightgbm" else real(name, *a))
    for cmd in (["train"], ["evaluate"], ["readiness"]):
        assert run_cli(cli, ["--data-dir", str(tmp_path)] + cmd) == 1
        err = capsys.readouterr().err
        assert err.startswith("nomade: error: `nomade ") and err.count("\n") == 1
        assert "needs the [train] extra; missing: lightgbm" in err


# What each runtime entry point imports, run in a fresh interpreter: the module is imported and,
# where given, its main/command help is exercised so lazily imported paths are loaded too.
RUNTIME_PATHS = {
    "prolog": "import nomade.hooks.prolog, nomade.hooks.startscore",
    "epilog": "import nomade.hooks.epilog",
    "task_prolog": "import nomade.hooks.task_prolog",
    "mailprog": "import nomade.hooks.mailprog",
    "nomade-why": "import nomade.cli.why_cmd, nomade.why",
    "why-service": "import nomade.cli.why_service_cmd, nomade.whyservice.server",
    "recorder": "import nomade.cli.record_cmd, nomade.recorder.sampler",
    "collect": ("import nomade.cli.collect_cmd, nomade.cli.status_cmd, nomade.analysis\n"
                "from nomade.collectors.registry import registry\nregistry()"),
    "alerts-behaviour-web": ("import nomade.alerts.engine, nomade.cli.alerts_cmd, nomade.behaviour.analysis, "
                             "nomade.production, nomade.predict, nomade.demo_replay, nomade.web.metrics_endpoint, "
                             "nomade.behaviour.zones, nomade.web.model_charts, nomade.ml_status, nomade.cli.ml_cmd"),
    "cli-help": ("from nomade.cli.main import cli, run_cli\n"
                 "for c in (['--help'], ['jobs', '--help'], ['report', '--help'],"
                 " ['ingest', 'sacct', '--help'], ['ingest', 'hooks', '--help'],"
                 " ['record', '--help'], ['config', 'show', '--help']):\n"
                 "    try:\n        run_cli(cli, c)\n    except SystemExit:\n        pass"),
}
PROBE = "\nimport sys, json\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"


@pytest.mark.parametrize("name", sorted(RUNTIME_PATHS))
def test_runtime_paths_import_no_training_stack(name):
    code = RUNTIME_PATHS[name] + PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    bad = sorted(set(HEAVY) & mods)
    assert not bad, f"{name} imported {bad}"
