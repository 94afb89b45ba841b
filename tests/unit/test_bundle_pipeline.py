"""End to end on a small synthetic store: train -> candidate bundle -> publish -> score ->
refresh-history; too little data is a clear error."""

import json

import numpy as np
import pytest

from gbdt_fixtures import make_store

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nomade.config import load_config
    from nomade.train.pipeline import train_bundle

    tmp = tmp_path_factory.mktemp("pipe")
    store = make_store(tmp, n=3000)
    cfg = load_config(None, {"data_dir": str(tmp)})
    res = train_bundle(store, cfg, cfg.registry_dir, rounds=25)
    yield store, cfg, res
    store.close()


def test_bundle_contents(trained):
    from nomade.scoring.bundle import load_bundle

    _, _, res = trained
    b = load_bundle(res.path)
    m = b.manifest
    assert {"gbdt_lite.onnx", "gbdt_submit.onnx", "trees_gbdt_lite.json", "history.json",
            "history_lite.json", "submit_model.lua"} <= set(m["files"])
    assert {"gbdt_lite", "gbdt_submit", "user_history"} <= set(m["metrics"])
    for met in m["metrics"].values():
        assert 0.0 <= met["pr_auc"] <= 1.0 and met["n_test"] > 0
    assert m["training_window"]["first_submit"] < m["training_window"]["last_submit"]
    assert 0 < m["thresholds"]["alert"] <= m["thresholds"]["high"] <= 1
    assert m["lua"]["model"] == "gbdt_lite"


def test_score_batch_and_single(trained):
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer

    _, _, res = trained
    sc = Scorer(load_bundle(res.path))
    reqs = [{"user": f"u{i % 40}", "name": "app3", "cpus": 64, "nodes": 4, "timelimit_s": 3600,
             "submit_time": 1_700_000_000.0 + 61 * 86400 + i} for i in range(40)]
    batch = sc.score(reqs)
    single = [sc.score([r])[0] for r in reqs[:5]]
    for a, b in zip(batch[:5], single):
        assert abs(a.risk - b.risk) < 1e-9
        assert [x[0] for x in a.reasons] == [x[0] for x in b.reasons]
    assert all(0 <= s.risk <= 1 and s.level in ("low", "elevated", "high") for s in batch)
    assert batch[0].model_version == res.version
    assert any(s.reasons for s in batch)


def test_publish_then_keep_better_current(trained):
    from nomade.scoring.registry import current_version
    from nomade.train.pipeline import publish

    store, cfg, res = trained
    publish(store, cfg.registry_dir, res, 0.01)
    assert res.promoted and current_version(cfg.registry_dir) == res.version
    worse = json.loads(json.dumps(res.manifest))
    prim = worse["ensemble"]["primary"]["submit"]
    worse["metrics"][prim]["pr_auc"] -= 0.2

    class R:
        version, path, manifest, promoted, promote_reason = "worse", res.path, worse, False, ""
    r = publish(store, cfg.registry_dir, R(), 0.01)
    assert not r.promoted and "kept" in r.promote_reason
    assert current_version(cfg.registry_dir) == res.version


def test_refresh_history(trained):
    from nomade.jobrecord import JobRecord
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.registry import current_version
    from nomade.store.jobs import upsert_jobs
    from nomade.train.pipeline import publish, refresh_history

    store, cfg, res = trained
    if current_version(cfg.registry_dir) is None:
        publish(store, cfg.registry_dir, res, 0.01)
    t = 1_700_000_000.0 + 70 * 86400
    upsert_jobs(store, [JobRecord(cluster="synth", job_id=f"9{i}", job_id_raw=90000 + i, name="fresh",
                                  user="newuser", uid=5000, submit_time=t + i, req_cpus=1, timelimit_s=60,
                                  state="FAILED", state_raw="FAILED", is_final=1, start_time=t + i,
                                  end_time=t + i + 10, elapsed_s=10) for i in range(3)], "test")
    out = refresh_history(store, cfg, cfg.registry_dir)
    assert current_version(cfg.registry_dir) == out.version and out.version.startswith(res.version.split(".h")[0])
    b = load_bundle(out.path)
    assert "newuser" in b.json("history_lite.json")["users"]
    assert 'U["newuser"]' in (out.path / "submit_model.lua").read_text()


def test_too_little_data(tmp_path):
    from nomade.config import load_config
    from nomade.errors import ModelError
    from nomade.train.pipeline import train_bundle

    store = make_store(tmp_path, n=300)
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    with pytest.raises(ModelError, match=r"only 300 ended jobs .* at least 2000 \(train.min_jobs\)"):
        train_bundle(store, cfg, cfg.registry_dir)
