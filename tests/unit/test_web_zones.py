"""The network view's safe and danger zones (``nomade.behaviour.zones``): each hotspot of the
behaviour analysis placed where its jobs sit in each layout, in the nodes' own coordinates;
served by /api/network to admins and users alike (aggregates of >= min_count jobs, no job named)."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nomade.behaviour.analysis import Options, analyse
from nomade.behaviour.export import export_analysis
from nomade.behaviour.vectors import AXES, NAMES, from_arrays
from nomade.behaviour.zones import MIN_RADIUS, ellipsoid, with_shapes, zone_shapes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _analysis(n=600, nan_axes=False, seed=1, feature="nfs_write"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    j = NAMES.index(feature)
    y = (rng.random(n) < np.where(X[:, j] > 0.8, 0.7, 0.1)).astype(np.int8)
    if nan_axes:
        X[:, [NAMES.index(a) for a in AXES]] = np.nan
    return analyse(from_arrays(X, y), Options(permutations=0))


def test_danger_and_safe_zones_sit_where_their_jobs_are():
    a = _analysis()
    data = with_shapes(a, export_analysis(a, limit=300))
    zones = {z["kind"]: z for z in data["zones"] if z["feature"] == "nfs_write"}
    assert set(zones) == {"danger", "safe"}
    d, s = zones["danger"], zones["safe"]
    assert d["members"] >= d["n"] >= 20 and d["label"] == "NFS write" and " .. " in d["range"]
    # nfs_write is the first design axis: the danger zone (high writes) lies to the right
    assert d["shape"]["xyz"]["centre"][0] > s["shape"]["xyz"]["centre"][0]
    for z in (d, s):
        for layout in ("xyz", "pca"):
            sh = z["shape"][layout]
            assert len(sh["centre"]) == len(sh["radii"]) == 3 and all(r > 0 for r in sh["radii"])
    json.dumps(data, allow_nan=False)
    assert all(set(z) >= {"kind", "feature", "low", "high", "failure_rate", "n", "ci"} for z in data["zones"])


def test_zone_spans_the_nodes_in_range():
    a = _analysis()
    data = with_shapes(a, export_analysis(a))           # every job a node, in row order
    z = next(z for z in data["zones"] if z["kind"] == "danger")
    j = NAMES.index(z["feature"])
    inside = (a.bset.X[:, j] >= z["low"]) & (a.bset.X[:, j] <= z["high"])
    xs = np.array([n["xyz"][0] for n in data["nodes"]])[inside]
    c, r = z["shape"]["xyz"]["centre"][0], z["shape"]["xyz"]["radii"][0]
    assert abs(c - np.median(xs)) < 5e-3      # the nodes' positions are rounded
    assert 0.6 <= np.mean(np.abs(xs - c) <= r + 1e-9) <= 1.0   # the 10th..90th percentile band


def test_unknown_axes_leave_only_the_pca_shape():
    a = _analysis(nan_axes=True, feature="cores_log")
    shapes = zone_shapes(a)
    assert shapes and all(s["shape"]["xyz"] is None and s["shape"]["pca"] for s in shapes)
    assert ellipsoid(np.full((5, 3), np.nan), np.ones(3)) is None


def test_radius_floor_and_mismatched_export():
    sh = ellipsoid(np.zeros((30, 3)), np.array([2.0, 1.0, 0.5]))
    assert sh["radii"] == [MIN_RADIUS * 2.0, MIN_RADIUS, MIN_RADIUS * 0.5] and sh["centre"] == [0.0, 0.0, 0.0]
    a = _analysis()
    other = {"zones": [{"kind": "danger"}]}                # not this analysis' export
    assert with_shapes(a, dict(other)) == other


# ------------------------------------------------------------------ through the dashboard
pytest.importorskip("starlette", reason="the web extra is not installed")


@pytest.fixture
def site(tmp_path, monkeypatch):
    if os.getuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("the tests make tokens for other uids (chown): run as root")
    import web_fixtures as wf
    return dict(wf.zone_site(tmp_path, monkeypatch), wf=wf)


def _network(site, uid):
    c = site["wf"].logged_in(site["app"], site["dir"], uid)
    deadline = time.time() + 60
    while True:
        d = c.get("/api/network").json()
        if d.get("source") == "behaviour" or time.time() > deadline:
            return d
        time.sleep(0.3)


def test_api_network_carries_zone_shapes_for_admin_and_user(site):
    wf = site["wf"]
    root = _network(site, 0)
    assert root["source"] == "behaviour"
    kinds = {z["kind"]: z for z in root["zones"]}
    assert set(kinds) == {"danger", "safe"} and kinds["danger"]["feature"] == "cores_log"
    assert kinds["danger"]["shape"]["pca"] and kinds["danger"]["shape"]["xyz"] is None   # no I/O samples
    alice = _network(site, wf.ALICE[1])
    assert alice["nodes"] and all(n["own"] for n in alice["nodes"])
    assert all(n["job_id"] is not None for n in alice["nodes"])
    assert [z["shape"] for z in alice["zones"]] == [z["shape"] for z in root["zones"]]
    text = json.dumps(alice["zones"])
    assert wf.BOB[0] not in text and '"job_id"' not in text
