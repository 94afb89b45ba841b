"""End to end on a small synthetic store: train (rolling evaluation + stacked ensembles for the
submit and start stages) -> candidate bundle -> the bundle's ONNX ensemble against the native
models -> publish -> score -> refresh-history; too little data is a clear error."""

import json

import numpy as np
import pytest

from gbdt_fixtures import make_store, synthetic_records

from nomade import risk_scale

pytestmark = pytest.mark.train
N_JOBS = 3000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nomade.config import load_config
    from nomade.train.pipeline import train_bundle

    tmp = tmp_path_factory.mktemp("pipe")
    store = make_store(tmp, n=N_JOBS)
    cfg = load_config(None, {"data_dir": str(tmp), "train.folds": 2})
    res = train_bundle(store, cfg, cfg.registry_dir, rounds=25)
    yield store, cfg, res
    store.close()


def test_bundle_contents(trained):
    from nomade.scoring.bundle import load_bundle

    _, _, res = trained
    m = load_bundle(res.path).manifest
    assert m["format_version"] == 2
    for stage in ("submit", "start"):
        for base in ("gbdt", "lite", "gnn", "lstm", "autoencoder"):
            assert f"{base}_{stage}.onnx" in m["files"], (stage, base)
        assert f"history_{stage}.json" in m["files"]
        st = m["ensemble"]["stacks"][f"ensemble_{stage}"]
        assert st["stage"] == stage and len(st["coef"]) == len(st["bases"]) == 5
        assert st["calibration"]["kind"] in ("platt", "isotonic", "identity")
        assert st["mode"] in ("stacked", "fallback-weights", "single-base")   # publish_gate.choose_primary
        assert all(c >= 0 for c in st["coef"]) and sum(st["coef"]) > 0      # non-negative weights
        assert 0 < m["stage_thresholds"][stage]["alert"] <= m["stage_thresholds"][stage]["high"] <= 1
        # the alert policy (model.alert_budget 10 %, model.min_precision 0.5) and what decided
        ch = m["alert_policy"][stage]
        assert ch["threshold"] == m["stage_thresholds"][stage]["alert"] and ch["budget"] == 0.1
        assert ch["rule"].startswith(("alert budget", "min precision")) and len(ch["table"]) == 9
        assert ch["flagged"] <= 0.1 + 1e-9 and (ch["precision"] >= 0.5 or ch["threshold"] == 1.0)
    lua_ch = m["alert_policy"]["lua"]
    assert lua_ch["threshold"] == m["lua"]["threshold"] and lua_ch["flagged"] <= 0.1 + 1e-9
    assert {"start_context.json", "knn_submit_bank_z.npy", "seq_start_users.npy",
            "gbdt_lite.onnx", "trees_gbdt_lite.json", "history_lite.json", "submit_model.lua"} <= set(m["files"])
    assert m["ensemble"]["primary"] == {"submit": "ensemble_submit", "start": "ensemble_start"}
    want = {"ensemble", "gbdt", "gnn", "lstm", "autoencoder", "user_history", "gbdt_hpe", "gbdt_lite"}
    assert want <= set(m["metrics"])
    for met in m["metrics"].values():
        assert 0.0 <= met["pr_auc"] <= 1.0 and met["n_test"] > 0
    assert set(m["evaluation"]) == {"submit", "start"}
    assert m["evaluation"]["start"]["metrics"]["ensemble"]["n_test"] > 0
    assert m["training_window"]["first_submit"] < m["training_window"]["last_submit"]
    assert m["lua"]["model"] == "gbdt_lite"
    for stage in ("submit", "start"):
        assert (res.path.parent.parent / "reports").is_dir() and res.reports[stage]


def future_jobs(store, n=40):
    """New pending jobs of distinct users, submitted after every stored job had ended, as store
    rows and as the request dicts the scorer takes (start stage: started 10 minutes after
    submission). Distinct users: a bundle cannot know of submissions made after it was built,
    so two new jobs of one user would differ in their submission counts."""
    from nomade.jobrecord import JobRecord

    last_end = store.conn.execute("SELECT max(end_time) FROM jobs").fetchone()[0]
    t0 = last_end + 3600.0
    recs, reqs, seen = [], [], set()
    for r in synthetic_records(400, seed=11):
        if r.user in seen or len(recs) == n:
            continue
        seen.add(r.user)
        i = len(recs)
        sub = t0 + 30.0 * i
        recs.append(JobRecord(cluster="synth", job_id=f"f{i}", job_id_raw=900000 + i, name=r.name,
                              user=r.user, uid=r.uid, submit_time=sub, req_cpus=r.req_cpus,
                              req_nodes=r.req_nodes, req_mem_mb=r.req_mem_mb,
                              req_mem_per_cpu=r.req_mem_per_cpu, timelimit_s=r.timelimit_s,
                              state="PENDING", state_raw="PENDING", is_final=0))
        reqs.append({"user": r.user, "name": r.name, "cpus": r.req_cpus, "nodes": r.req_nodes,
                     "mem_mb": r.req_mem_mb, "mem_per_cpu": False, "timelimit_s": r.timelimit_s,
                     "submit_time": sub, "start_time": sub + 600.0})
    return recs, reqs


def test_onnx_ensemble_matches_native_models(trained):
    """The bundle's ONNX + numpy ensemble equals the native (LightGBM / torch / torch_geometric)
    ensemble on jobs submitted after training, within 1e-5, at the submit stage."""
    from nomade.features.build import build_matrix
    from nomade.features.jobtable import load_jobs, table_from_rows
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.lite_features import build_lite_rows
    from nomade.train.pipeline import lite_requests
    from nomade.scoring.score import Scorer
    from nomade.train.ensemble import subset

    store, cfg, res = trained
    recs, reqs = future_jobs(store)
    jt = load_jobs(store)
    rows = [dict(zip(jt.cols, vals)) for vals in zip(*jt.cols.values())]
    ext = table_from_rows(rows + [r.__dict__ for r in recs])
    fm = build_matrix(ext, "submit", cfg)
    fm.meta["lite_X"], _ = build_lite_rows(lite_requests(ext, fm.y), True)   # the base "lite"
    new = np.flatnonzero(np.isin(fm.job_id, [r.job_id for r in recs]))
    ens = res.fitted["submit"]
    native = ens.predict(subset(fm, new))
    order = {j: k for k, j in enumerate(fm.job_id[new])}
    native = native[[order[r.job_id] for r in recs]]
    got = np.array([s.risk for s in Scorer(load_bundle(res.path)).score(reqs, stage="submit")])
    np.testing.assert_allclose(got, native, atol=1e-5, err_msg="ensemble_submit: bundle vs native")


def test_score_batch_and_single(trained):
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer

    store, _, res = trained
    _, reqs = future_jobs(store, 40)
    sc = Scorer(load_bundle(res.path))
    for stage in ("submit", "start"):
        batch = sc.score(reqs, stage=stage)
        single = [sc.score([r], stage=stage)[0] for r in reqs[:5]]
        for a, b in zip(batch[:5], single):
            assert abs(a.risk - b.risk) < 1e-6
            assert [x[0] for x in a.reasons] == [x[0] for x in b.reasons]
        assert all(0 <= s.risk <= 1 and s.level in risk_scale.LEVELS for s in batch)
        assert batch[0].model_version == res.version and batch[0].model == f"ensemble_{stage}"
        assert any(s.reasons for s in batch)


def test_reasons_split_the_stacked_logit(trained):
    """Tree features (scaled path contributions, gbdt and lite) and the other bases as
    pseudo-features add up to the stacked logit minus the intercept and the trees' bias share."""
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer

    store, _, res = trained
    _, reqs = future_jobs(store, 10)
    m = Scorer(load_bundle(res.path)).model_for("submit")
    ev = m.evaluate(reqs)
    names, contrib, values = m.contributions(ev)
    assert {"similar_past_jobs", "recent_job_sequence", "unusual_request"} <= set(names)
    bias = sum(m.coef[j] * (b.trees.bias - m.mu[j]) / m.sd[j]
               for j, b in enumerate(m.bases) if b.trees is not None)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, ev.terms.sum(axis=1), atol=1e-3)
    assert values.shape == contrib.shape and np.isnan(values[:, names.index("similar_past_jobs")]).all()
    assert {"lite_submit", "gbdt_submit"} <= set(m.base_names)


def test_publish_then_keep_better_current(trained):
    from nomade.scoring.registry import current_version
    from nomade.train.pipeline import publish

    store, cfg, res = trained
    publish(store, cfg.registry_dir, res, 0.01)
    assert res.promoted and current_version(cfg.registry_dir) == res.version
    worse = json.loads(json.dumps(res.manifest))
    alone = (worse["ensemble"]["stacks"]["ensemble_submit"].get("single_base") or {}).get("base")
    worse["metrics"][alone or "ensemble"]["pr_auc"] -= 0.2    # the published model's figure

    class R:
        version, path, manifest, promoted, promote_reason = "worse", res.path, worse, False, ""
    r = publish(store, cfg.registry_dir, R(), 0.01)
    assert not r.promoted and "kept" in r.promote_reason
    assert current_version(cfg.registry_dir) == res.version


def test_refresh_history(trained):
    from nomade.jobrecord import JobRecord
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.registry import current_version
    from nomade.scoring.score import Scorer
    from nomade.store.jobs import upsert_jobs
    from nomade.train.pipeline import publish, refresh_history

    store, cfg, res = trained
    if current_version(cfg.registry_dir) is None:
        publish(store, cfg.registry_dir, res, 0.01)
    t = store.conn.execute("SELECT max(end_time) FROM jobs").fetchone()[0] + 600
    upsert_jobs(store, [JobRecord(cluster="synth", job_id=f"9{i}", job_id_raw=90000 + i, name="fresh",
                                  user="newuser", uid=5000, submit_time=t + i, req_cpus=1, timelimit_s=60,
                                  state="FAILED", state_raw="FAILED", is_final=1, start_time=t + i,
                                  end_time=t + i + 10, elapsed_s=10) for i in range(3)], "test")
    out = refresh_history(store, cfg, cfg.registry_dir)
    assert current_version(cfg.registry_dir) == out.version and out.version.startswith(res.version.split(".h")[0])
    b = load_bundle(out.path)
    assert b.manifest["format_version"] == 2
    assert "newuser" in b.json("history_lite.json")["users"]
    lua_text = (out.path / "submit_model.lua").read_text()  # history keyed by hashes, never names
    assert "newuser" not in lua_text
    assert lua_text.count("\nU[") == len(b.json("history_lite.json")["users"])
    assert "newuser" in b.json("history_submit.json")["users"]
    assert "newuser" in set(b.array("seq_submit_users.npy").tolist())
    old_bank = load_bundle(res.path).array("knn_submit_bank_label.npy")
    new_bank = b.array("knn_submit_bank_label.npy")
    assert len(new_bank) == len(old_bank) + 3 and np.all(new_bank[-3:] == 1.0)
    req = {"user": "newuser", "name": "fresh", "cpus": 1, "timelimit_s": 60, "submit_time": t + 3600}
    before = Scorer(load_bundle(res.path)).score([req])[0].risk
    after = Scorer(b).score([req])[0].risk
    assert after > before   # three fresh failures of this user now count


def test_too_little_data(tmp_path):
    from nomade.config import load_config
    from nomade.errors import ModelError
    from nomade.train.pipeline import train_bundle

    store = make_store(tmp_path, n=300)
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    with pytest.raises(ModelError, match=r"only 300 ended jobs .* at least 2000 \(train.min_jobs\)"):
        train_bundle(store, cfg, cfg.registry_dir)


def test_cold_start_bundle_is_site_independent(tmp_path):
    """`train --no-full` (how models/default is built): the lite GBDT alone, no per-user data,
    one temporal split, scored by the format-1-style single-model path."""
    from nomade.config import load_config
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer
    from nomade.train.pipeline import train_bundle

    store = make_store(tmp_path, n=3000)
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    res = train_bundle(store, cfg, cfg.registry_dir, with_history=False, use_full_features=False, rounds=20)
    store.close()
    m = res.manifest
    assert m["ensemble"]["mode"] == "single" and m["ensemble"]["primary"] == {"submit": "gbdt_lite"}
    assert set(m["metrics"]) == {"gbdt_lite"} and m["evaluation"]["lua"]["metrics"]["gbdt_lite"]["n_test"] > 0
    assert load_bundle(res.path).json("history_lite.json")["users"] == {}
    [rs] = Scorer(load_bundle(res.path)).score([{"user": "anyone", "cpus": 64, "submit_time": 1.8e9}])
    assert 0 <= rs.risk <= 1 and rs.model == "gbdt_lite"
