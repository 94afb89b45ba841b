"""The dashboard over a store on a real PostgreSQL (tests/pg_fixture.py): the same pages and
privacy rule as on SQLite (the page queries of store.web_queries translated by store.dialect)."""

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import web_fixtures as wf  # noqa: E402

from nomade.config import load_config  # noqa: E402
from nomade.store import web_queries  # noqa: E402
from nomade.store.db import open_store  # noqa: E402
from nomade.web.app import create_app  # noqa: E402


@pytest.fixture
def site(tmp_path, pg_url, monkeypatch):
    if os.getuid() != 0:
        pytest.skip("tokens for other uids need root (chown)")
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    facts = wf.build_store(tmp_path, location=pg_url)
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(str(tmp_path / "none.toml"), {"data_dir": str(tmp_path), "store.url": pg_url,
                                                    "privacy.admin_group": "nomade-test-no-such-group"})
    return {"app": create_app(cfg), "dir": tmp_path, "url": pg_url, **facts}


def login(site, uid):
    c = TestClient(site["app"], follow_redirects=False)
    assert c.get("/login", params={"token": wf.token_for(site["dir"], uid)}).status_code == 303
    return c


def test_pages_and_privacy_on_postgres(site):
    alice, root = login(site, wf.ALICE[1]), login(site, 0)
    for p in ["/", "/jobs", "/jobs?state=failed&level=CRITICAL", "/job/101", "/network", "/models",
              "/alerts", "/me", "/api/network", "/events?once=1"]:
        assert alice.get(p).status_code == 200, p
        assert root.get(p).status_code == 200, p
    mine = {j["job_id"] for j in alice.get("/api/jobs", params={"page": 1}).json()["jobs"]}
    assert mine <= site["alice_jobs"] and mine
    assert alice.get("/job/201").status_code == 404
    everyone = {j["job_id"] for j in root.get("/api/jobs").json()["jobs"]}
    assert everyone & site["bob_jobs"]
    crit = root.get("/api/jobs", params={"level": "CRITICAL"}).json()["jobs"]
    assert crit and {j["level"] for j in crit} == {"CRITICAL"}
    assert alice.get("/api/job/105").json()["series"]["projection"]["consistent"]


def test_store_reads_on_postgres(site):
    with open_store(site["url"], readonly=True, migrate=False) as store:
        assert web_queries.more_jobs_than(store, 5) and not web_queries.more_jobs_than(store, 1000)
        assert web_queries.newest_submit(store, wf.CLUSTER) is not None
        assert sum(web_queries.level_counts(store, wf.CLUSTER, 0.0).values()) == wf.N_ALICE + wf.N_BOB
        assert len(web_queries.newest_change(store)) == 4
