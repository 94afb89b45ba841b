"""Running jobs on the Network page (/api/network/running): each running job with recorder
samples placed in the network's layouts by the behaviour analysis' own transform
(``behaviour.zones.layout_fit`` / ``place``), or by the page's fallback (what it asked for);
a user sees only their own running jobs, an admin all; positions move as samples arrive."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nomade.behaviour.analysis import Options, analyse
from nomade.behaviour.vectors import AXES, NAMES, from_arrays
from nomade.behaviour.zones import layout_fit, layouts, place

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.mark.parametrize("nan_axes", [False, True])
def test_place_puts_the_analysis_jobs_where_the_export_does(nan_axes):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, len(NAMES)))
    X[rng.random(X.shape) < 0.1] = np.nan
    if nan_axes:
        X[:, [NAMES.index(a) for a in AXES]] = np.nan
    a = analyse(from_arrays(X, (rng.random(400) < 0.2).astype(np.int8)), Options(permutations=0))
    fit = layout_fit(a)
    json.dumps(fit, allow_nan=False)                      # plain numbers, kept with the export
    got, want = place(fit, a.bset.X), layouts(a)
    for name in ("xyz", "pca"):
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-9, err_msg=name)
    one = place(fit, a.bset.X[:1])                        # a lone job is placed the same
    np.testing.assert_allclose(one["pca"], want["pca"][:1], atol=1e-9)


# ------------------------------------------------------------------ through the dashboard
pytest.importorskip("starlette", reason="the web extra is not installed")


@pytest.fixture
def site(tmp_path, monkeypatch):
    if os.getuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("the tests make tokens for other uids (chown): run as root")
    import web_fixtures as wf
    return dict(wf.zone_site(tmp_path, monkeypatch, running=True), wf=wf)


def _app(data, **settings):
    import web_fixtures as wf
    return wf.web_app(data, **settings)


def _client(site, uid, app=None):
    return site["wf"].logged_in(app or site["app"], site["dir"], uid)


def _running(c, source="behaviour"):
    deadline = time.time() + 60
    while True:
        if c.get("/api/network").json().get("source") == source or time.time() > deadline:
            break
        time.sleep(0.3)
    r = c.get("/api/network/running")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    d = json.loads(r.text)
    assert d["source"] == source, d
    return d


def test_admin_sees_every_running_job_a_user_only_theirs(site):
    wf = site["wf"]
    root = _running(_client(site, 0))
    assert {j["job_id"] for j in root["jobs"]} == set(wf.RUNNING_ALICE + wf.RUNNING_BOB)
    assert root["count"] == len(root["jobs"]) and {j["user"] for j in root["jobs"]} == {wf.ALICE[0], wf.BOB[0]}
    for j in root["jobs"]:
        assert len(j["xyz"]) == len(j["pca"]) == 3 and all(isinstance(v, float) for v in j["pca"])
        assert all(v is None or 0.0 <= v <= 1.0 for v in j["xyz"]) and j["last_sample"] and j["elapsed_s"] > 0
    alice = _client(site, wf.ALICE[1])
    mine = _running(alice)
    assert {j["job_id"] for j in mine["jobs"]} == set(wf.RUNNING_ALICE)
    assert all(j["own"] and j["user"] is None for j in mine["jobs"])
    text = alice.get("/api/network/running").text
    assert wf.BOB[0] not in text and '"204"' not in text and "<script" not in text
    bob = _running(_client(site, wf.BOB[1]))
    assert [j["job_id"] for j in bob["jobs"]] == ["204"]
    # the same job is placed alike for its owner and the admin (one transform for all viewers)
    by_id = {j["job_id"]: j for j in root["jobs"]}
    assert all(j["pca"] == by_id[j["job_id"]]["pca"] for j in mine["jobs"])


def test_positions_move_when_new_samples_arrive(site):
    from nomade.store.db import open_store
    c = _client(site, 0)
    before = {j["job_id"]: j["pca"] for j in _running(c)["jobs"]}
    with open_store(site["dir"] / "nomade.db") as store:
        site["wf"].add_running_samples(store, 1)
    after = {j["job_id"]: j for j in _running(c)["jobs"]}
    assert set(after) == set(before)
    assert all(after[k]["pca"] != before[k] for k in before), (before, after)
    assert after["105"]["elapsed_s"] > 0


def test_without_the_analysis_running_jobs_are_placed_as_the_fallback_places_jobs(site):
    wf = site["wf"]
    app = _app(site["dir"], **{"web.network_max_jobs": 0})
    c = _client(site, wf.ALICE[1], app)
    net = _running(c, "requests")
    page = {n["job_id"]: n for n in c.get("/api/network").json()["nodes"]}
    assert {j["job_id"] for j in net["jobs"]} == set(wf.RUNNING_ALICE)
    for j in net["jobs"]:                      # the fallback lists running jobs too: same place
        assert j["xyz"] == pytest.approx(page[j["job_id"]]["xyz"], abs=1e-4)
        assert j["pca"][2] == 0.0


def test_bounded_and_login_required(site, monkeypatch):
    from starlette.testclient import TestClient

    from nomade.web import queries
    assert TestClient(site["app"]).get("/api/network/running").status_code == 401
    monkeypatch.setattr(queries, "RUNNING_MAX", 2)
    d = _running(_client(site, 0, _app(site["dir"])))
    assert d["count"] == 2 and d["limit"] == 2
