"""`nomade demo --no-train`: the bundled trace, a fresh data dir, the summary (the model steps are
tested with nomade.train). The import runs once per module."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.cli.main import cli, run_cli
from nomade.demo import bundled_trace_path, prepare_data_dir, run_demo
from nomade.errors import StoreError
from nomade.store import open_store
from nomade.store.jobs import upsert_jobs
from nomade.jobrecord import JobRecord

ATLAS_SHA256 = "48cc83b7a0490252aa1ae41a4b03dd598bc0683e146be94047febee36e7e0b36"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`nomade --data-dir D demo --json`, run once: (data dir, parsed JSON)."""
    data_dir = tmp_path_factory.mktemp("demo")
    env = {k: None for k in os.environ if k.startswith("NOMADE_")}
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "demo", "--no-train", "--json"], env=env)
    assert res.exit_code == 0, res.output
    return data_dir, json.loads(res.output)


def test_bundled_trace_is_the_archive_file_with_attribution():
    path = bundled_trace_path()
    assert path.name == "llnl-atlas-2006.swf.gz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ATLAS_SHA256
    text = (path.parent / "ATTRIBUTION.txt").read_text()
    for needle in ("Parallel Workloads Archive", "Feitelson", "Tsafrir", "Krakov",
                   "Journal of Parallel and Distributed Computing",
                   "74(10)", "Moe Jette", ATLAS_SHA256):
        assert needle in text


def test_demo_summary_counts(demo_run):
    data_dir, doc = demo_run
    assert doc["data_dir"] == str(data_dir) and doc["store"] == str(data_dir / "nomade.db")
    assert doc["jobs"] == 43778 and doc["trace"]["new"] == 43778
    assert doc["trace"]["cluster"] == "llnl-atlas-2006" and doc["trace"]["quarantined"] == 0
    # SWF status counts of the Atlas log: 1 -> success, 0 -> failed, 5 -> cancelled (by owner)
    assert doc["outcomes"] == {"success": 21915, "failed": 10431, "cancelled_owner": 11432}
    assert doc["users"] > 100
    assert doc["first_submit"] < doc["last_submit"]


def test_demo_refuses_a_store_that_holds_jobs(demo_run, capsys):
    data_dir, _ = demo_run
    rc = run_cli(cli, ["--data-dir", str(data_dir), "demo"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "--force" in err
    assert prepare_data_dir(data_dir, force=True) == data_dir


def test_prepare_data_dir(tmp_path):
    fresh = prepare_data_dir(None)
    try:
        assert fresh.is_dir() and fresh.name.startswith("nomade-demo-") and not any(fresh.iterdir())
    finally:
        fresh.rmdir()
    empty_store = tmp_path / "a"
    open_store(empty_store / "nomade.db").close()
    assert prepare_data_dir(empty_store) == empty_store       # a store without jobs is fine
    with open_store(empty_store / "nomade.db") as store:
        upsert_jobs(store, [JobRecord("c", "1")], "test")
    with pytest.raises(StoreError, match="already holds jobs"):
        prepare_data_dir(empty_store)
    assert prepare_data_dir(tmp_path / "new" / "dir").is_dir()


def test_run_demo_reports_progress_lines(demo_run, tmp_path):
    # a second import into the demo's store is all unchanged, and says so through `out`
    data_dir, _ = demo_run
    lines = []
    summary = run_demo(data_dir, out=lines.append, train=False)
    assert summary.trace.counts.unchanged == 43778
    assert lines[0].startswith("importing llnl-atlas-2006.swf.gz")
    assert lines[1].startswith("swf llnl-atlas-2006: 0 new, 0 updated, 43778 unchanged")


def test_demo_text_output(tmp_path, monkeypatch):
    import nomade.demo as demo_mod
    from nomade.ingest import swf
    small = Path(__file__).resolve().parents[1] / "fixtures" / "swf" / "llnl_atlas_2006_head.swf"
    monkeypatch.setattr(demo_mod, "bundled_trace_path", lambda: small)
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "demo", "--no-train"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "jobs:      30" in out
    assert "submitted: 2006-12-18 .. 2006-12-19 (UTC)" in out
    assert "  cancelled_owner        17   56.7%" in out
    assert f"data dir:  {tmp_path / 'd'}" in out
    assert swf.trace_name(small) == "llnl_atlas_2006_head"
