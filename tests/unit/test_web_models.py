"""The Models page: the current bundle's readiness verdict (``nomade ml status``'s summary),
its evaluation charts as JSON the page draws (bars with baselines and chance, precision-recall
operating points, calibration), hostile model names kept as text, the report's server path for
admins only."""

import json
import math
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import web_fixtures as wf  # noqa: E402

from nomade import ml_status  # noqa: E402
from nomade.config import load_config  # noqa: E402
from nomade.store.db import open_store  # noqa: E402
from nomade.web.app import create_app  # noqa: E402
from nomade.web.model_charts import evaluation_charts, readiness_notes  # noqa: E402

if os.getuid() != 0 and os.environ.get("CI") != "true":
    pytest.skip("the tests make tokens for other uids (chown): run as root", allow_module_level=True)


@pytest.fixture
def site(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    wf.build_store(tmp_path, with_alerts=False)
    with open_store(tmp_path / "nomade.db") as store:
        wf.add_bundle(store)
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(str(tmp_path / "none.toml"), {"data_dir": str(tmp_path),
                                                    "privacy.admin_group": "nomade-test-no-such-group"})
    return {"cfg": cfg, "app": create_app(cfg), "dir": tmp_path}


def client(site, uid):
    c = TestClient(site["app"], client=("127.0.0.1", 50000), follow_redirects=False)
    assert c.get("/login", params={"token": wf.token_for(site["dir"], uid)}).status_code == 303
    return c


def _charts(manifest):
    return {c["id"]: c for c in evaluation_charts(manifest)}


def test_charts_from_an_evaluated_manifest():
    man = wf.evaluated_manifest("v1", wf.T0)
    charts = _charts(man)
    assert set(charts) == {"pr-auc-submit", "roc-auc-submit", "pr-submit", "ece-submit", "folds-submit",
                           "calibration-maps"}
    pr = charts["pr-auc-submit"]
    roles = {b["label"]: b["role"] for b in pr["bars"]}
    assert roles["ensemble"] == "published" and roles["user_history"] == roles["gbdt_hpe"] == "baseline"
    assert roles[wf.HOSTILE_MODEL] == "model"
    assert [r["value"] for r in pr["refs"]] == [0.2]                     # chance = the failure rate
    assert charts["roc-auc-submit"]["refs"][0]["value"] == 0.5
    lines = {s["label"]: s for s in charts["pr-submit"]["series"]}
    policy = lines["published, stack window"]
    assert policy["role"] == "policy" and len(policy["points"]) == 9
    assert policy["marks"][0][:2] == [0.4, 0.61]                          # the chosen operating point
    assert all(p == sorted(p) for p in [[q[0] for q in s["points"]] for s in lines.values()])
    assert len(charts["folds-submit"]["series"][0]["points"]) == 2
    assert charts["calibration-maps"]["refs"][0]["axis"] == "diagonal"
    json.dumps(list(charts.values()), allow_nan=False)                    # strict JSON


def test_base_published_alone_and_broken_values():
    man = wf.evaluated_manifest("v1", wf.T0)
    man["ensemble"]["published_alone"] = {"submit": {"base": "gbdt", "reason": "..."}}
    man["evaluation"]["submit"]["metrics"]["gbdt"]["pr_auc"] = float("nan")
    man["evaluation"]["submit"]["metrics"]["lite"] = "not a dict"
    man["alert_policy"]["submit"]["table"] = [{"recall": "x"}, None, {"recall": 0.5, "precision": 0.5, "flagged": 0}]
    charts = _charts(man)
    bars = {b["label"]: b for b in charts["pr-auc-submit"]["bars"]}
    assert "gbdt" not in bars and bars["ensemble"]["role"] == "model"
    assert charts["roc-auc-submit"]["bars"][1]["role"] == "published"      # gbdt, alone
    assert "published, stack window" not in {s["label"] for s in charts["pr-submit"]["series"]}


def test_no_evaluation_no_charts_and_notes_say_why():
    man = {"evaluation": {}, "evaluation_skipped": "only 600 labelled jobs; the rolling evaluation needs at least 1000",
           "ensemble": {"stacks": {"ensemble_submit": {"note": "too few failures in the stack window"}}}}
    assert evaluation_charts(man) == [] and evaluation_charts({}) == []
    notes = readiness_notes(man)
    assert notes[0].startswith("evaluation: only 600") and "too few failures" in notes[1]


def test_models_page_shows_verdict_and_charts(site):
    root = client(site, 0)
    d = root.get("/api/models").json()
    with open_store(site["dir"] / "nomade.db", migrate=False, readonly=True) as store:
        expect = ml_status.current(store, site["cfg"])
    assert d["current"]["version"] == expect["version"] == "20261101T000000Z"
    assert d["current"]["gate"] == expect["gate"] == "passed" and d["current"]["threshold"] == 0.55
    assert len(d["evaluation"]["charts"]) == 6
    assert d["evaluation"]["reports"] == {"submit": "/srv/nomade/reports/x"}
    assert any(n.startswith("start stage: only 900") for n in d["evaluation"]["notes"])
    html = root.get("/models").text
    assert 'id="current-verdict"' in html and "publish gate passed" in html
    assert html.count('class="chart"') == 6 and "/static/model_charts.js" in html
    assert "/srv/nomade/reports/x" in html
    assert wf.HOSTILE_MODEL not in html and "onerror" in html              # the name, as data only
    blob = html.split('id="page-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(blob)["charts"][0]["id"] == "pr-auc-submit"


def test_report_path_is_for_admins_only(site):
    alice = client(site, wf.ALICE[1])
    d = alice.get("/api/models").json()
    assert d["evaluation"]["reports"] == {} and len(d["evaluation"]["charts"]) == 6
    assert "/srv/nomade/reports/x" not in alice.get("/models").text


def test_no_bundle_says_so(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    wf.build_store(tmp_path, with_alerts=False)
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(str(tmp_path / "none.toml"), {"data_dir": str(tmp_path)})
    c = client({"app": create_app(cfg), "dir": tmp_path}, 0)
    d = c.get("/api/models").json()
    assert d["current"]["version"] is None and d["evaluation"]["charts"] == []
    assert "none published yet" in c.get("/models").text


def test_ml_status_summary_matches_the_cli(site):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    r = CliRunner().invoke(cli, ["--data-dir", str(site["dir"]), "ml", "status", "--json"])
    assert r.exit_code == 0, r.output
    cur = json.loads(r.output)["current"]
    with open_store(site["dir"] / "nomade.db", migrate=False, readonly=True) as store:
        lib = ml_status.current(store, site["cfg"])
    assert {k: v for k, v in cur.items() if k != "age_days"} == {k: v for k, v in lib.items() if k != "age_days"}
    assert math.isclose(cur["age_days"], lib["age_days"], rel_tol=1e-3)
