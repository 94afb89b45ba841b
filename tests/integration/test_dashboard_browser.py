"""The dashboard in a real browser: Playwright's Python API driving Debian's chromium against
uvicorn serving a small store (tests/web_fixtures.py). Every page loads with no console error, a
user sees only their own jobs, root sees all, a token of one user does not open another's job,
the network view draws as many points as jobs were sent (in one draw call per layer) and its
safe and danger zones, the Models page draws the bundle's evaluation charts and readiness verdict,
acknowledging an alert works, a new job appears without a reload (server-sent events), running
jobs are drawn as one more layer and move when new samples arrive.
Screenshots of each page go to $NOMADE_TEST_REPORT_DIR/screenshots/ (default
/tmp/nomade-test-report)."""

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

CI = os.environ.get("CI") == "true"
CHROMIUM = "/usr/bin/chromium"
# run in the main (Python 3.11) pass; the Python 3.9 pass deselects it (tests/run.sh, docs/testing.md)
pytestmark = pytest.mark.browser


def _need(cond: bool, why: str) -> None:
    if cond:
        return
    if CI:
        pytest.fail(f"browser test cannot run under CI: {why}")
    pytest.skip(why)


try:
    import uvicorn
    from playwright.sync_api import sync_playwright
except ImportError as exc:   # pragma: no cover - the dev and web extras bring both
    uvicorn = sync_playwright = None
    _MISSING = str(exc)
else:
    _MISSING = ""

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import web_fixtures as wf  # noqa: E402

SHOTS = Path(os.environ.get("NOMADE_TEST_REPORT_DIR", "/tmp/nomade-test-report")) / "screenshots"
PAGES = ["/", "/jobs", "/network", "/profiles", "/models", "/alerts", "/me", "/job/101", "/job/105"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("dash")
    yield from _serve(data, lambda: wf.build_store(data))


@pytest.fixture(scope="module")
def zone_server(tmp_path_factory):
    """The small store plus an evaluated bundle (the Models page's charts) and 240 ended jobs
    whose failures depend on their core count (the network's danger and safe zones)."""
    def build():
        from nomade.store.db import open_store
        from nomade.store.jobs import upsert_jobs
        facts = wf.build_store(data, with_alerts=False)
        with open_store(data / "nomade.db") as store:
            upsert_jobs(store, wf.zone_jobs(), "test")
            wf.add_bundle(store)
        return facts
    data = tmp_path_factory.mktemp("dash-zones")
    yield from _serve(data, build)


@pytest.fixture(scope="module")
def running_server(tmp_path_factory):
    """The zone store plus recorder samples (and summaries) of the running jobs."""
    def build():
        from nomade.store.db import open_store
        from nomade.store.jobs import upsert_jobs
        facts = wf.build_store(data, with_alerts=False)
        with open_store(data / "nomade.db") as store:
            upsert_jobs(store, wf.zone_jobs(), "test")
            wf.add_running_samples(store, 0)
        return facts
    data = tmp_path_factory.mktemp("dash-running")
    yield from _serve(data, build)


def _serve(data: Path, build):
    """uvicorn in a thread serving the store ``build()`` writes into ``data``; yields what the
    tests need."""
    _need(not _MISSING, f"playwright/uvicorn missing: {_MISSING}")
    _need(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed (apt-get install chromium)")
    _need(os.getuid() == 0, "tokens for other uids need root (chown)")
    from nomade.config import load_config
    from nomade.web.app import create_app
    facts = build()
    (data / "none.toml").write_text("")
    env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("NOMADE_") and k != "NOMADE_TEST_REPORT_DIR"}
    cfg = load_config(str(data / "none.toml"), {"data_dir": str(data), "web.live_interval_s": 1.0,
                                                "privacy.admin_group": "nomade-test-no-such-group"})
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning",
                                        timeout_graceful_shutdown=1, proxy_headers=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield {"url": f"http://127.0.0.1:{port}", "dir": data, **facts}
    srv.should_exit = True
    thread.join(10)
    os.environ.update(env)


@pytest.fixture(scope="module")
def browser():
    _need(not _MISSING, f"playwright missing: {_MISSING}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
        yield b
        b.close()


class Session:
    """One logged-in browser context; console errors and page errors collected."""

    def __init__(self, browser, server, uid: int, who: str):
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.ctx.new_page()
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.url, self.who = server["url"], who
        token = wf.token_for(server["dir"], uid)
        self.page.goto(f"{self.url}/login?token={token}")
        assert "/login" not in self.page.url

    def open(self, path: str, shot: bool = True):
        # "load", not "networkidle": the live-update stream (/events) stays open, and Playwright
        # before 1.65 (the last for Python 3.9 is 1.60) never sees the network idle then. Pages are
        # rendered by the server; what scripts draw later, the tests wait for by selector.
        resp = self.page.goto(self.url + path, wait_until="load")
        if shot:
            name = path.strip("/").replace("/", "-") or "overview"
            self.page.screenshot(path=str(SHOTS / f"{self.who}-{name}.png"), full_page=True)
        return resp


def test_every_page_loads_without_console_errors(browser, server):
    for uid, who in ((0, "admin"), (wf.ALICE[1], "user")):
        s = Session(browser, server, uid, who)
        for p in PAGES:
            resp = s.open(p)
            assert resp.status == 200, (who, p)
            if p == "/network":
                s.page.wait_for_function("() => window.nomadeNetwork && window.nomadeNetwork.ready", timeout=20000)
                s.page.screenshot(path=str(SHOTS / f"{who}-network.png"))
        assert s.errors == [], (who, s.errors)
        s.ctx.close()


def test_user_sees_only_own_jobs_and_admin_sees_all(browser, server):
    alice = Session(browser, server, wf.ALICE[1], "user")
    alice.open("/jobs", shot=False)
    users = set(alice.page.eval_on_selector_all("#jobs-table tbody tr[data-user]", "rs => rs.map(r => r.dataset.user)"))
    assert users == {wf.ALICE[0]}
    resp = alice.open("/job/201", shot=False)
    assert resp.status == 404 and "not among the jobs you may see" in alice.page.content()
    api = alice.page.evaluate("fetch('/api/jobs?job=201').then(r => r.json())")
    assert api["jobs"] == []
    root = Session(browser, server, 0, "admin")
    root.open("/jobs", shot=False)
    users = set(root.page.eval_on_selector_all("#jobs-table tbody tr[data-user]", "rs => rs.map(r => r.dataset.user)"))
    assert users == {wf.ALICE[0], wf.BOB[0]}
    alice.ctx.close()
    root.ctx.close()


def test_network_has_as_many_points_as_jobs_sent(browser, server):
    for uid, who in ((0, "admin"), (wf.ALICE[1], "user")):
        s = Session(browser, server, uid, who)
        s.open("/network", shot=False)
        s.page.wait_for_function("() => window.nomadeNetwork && window.nomadeNetwork.ready", timeout=20000)
        sent = s.page.evaluate("fetch('/api/network').then(r => r.json())")
        got = s.page.evaluate("window.nomadeNetwork.count")
        assert got == len(sent["nodes"]) == int(s.page.get_attribute("#net", "data-count")) > 0
        if sent.get("source") == "requests":
            assert got == (len(server["alice_jobs"]) if who == "user" else
                           len(server["alice_jobs"]) + len(server["bob_jobs"]))
        if s.page.evaluate("window.nomadeNetwork.webgl"):
            assert 1 <= s.page.evaluate("window.nomadeNetwork.drawCalls") <= 3   # points, links, zones
        s.page.click("#view-2d")
        s.page.click("#layout-pca")
        assert s.errors == [], s.errors
        s.ctx.close()


def test_job_page_draws_the_waterfall_and_series(browser, server):
    s = Session(browser, server, wf.ALICE[1], "user")
    s.open("/job/101", shot=False)
    assert s.page.get_attribute("#waterfall", "data-bars") == "5"      # base, 3 factors, risk
    s.open("/job/105", shot=False)
    assert s.page.locator("#series svg path.line").count() == 1
    assert s.errors == []
    s.ctx.close()


def test_acknowledging_an_alert(browser, server):
    if server["alert_ids"] is None:
        pytest.skip("the alert engine (nomade.store.alerts) is not installed")
    s = Session(browser, server, 0, "admin")
    s.open("/alerts", shot=False)
    aid = server["alert_ids"]["fs"]
    s.page.click(f"button.ack[data-alert='{aid}']")
    s.page.wait_for_selector(f"tr[data-alert='{aid}'] .acked", timeout=10000)
    assert "acknowledged by root" in s.page.inner_text(f"tr[data-alert='{aid}']")
    s.page.screenshot(path=str(SHOTS / "admin-alerts-acknowledged.png"), full_page=True)
    user = Session(browser, server, wf.ALICE[1], "user")
    user.open("/alerts", shot=False)
    assert user.page.locator("button.ack").count() == 0
    assert s.errors == [] and user.errors == []
    s.ctx.close()
    user.ctx.close()


def test_new_job_appears_without_reload(browser, server):
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs
    s = Session(browser, server, wf.ALICE[1], "user")
    s.open("/jobs", shot=False)
    s.page.wait_for_selector("#live-state.on", timeout=10000)
    s.page.evaluate("window.__marker = 1")            # survives only if the page is not reloaded
    with open_store(server["dir"] / "nomade.db") as store:
        upsert_jobs(store, [wf._job(399, wf.ALICE, "PENDING", name="live-job")], "test")
    t0 = time.time()
    s.page.wait_for_selector("#jobs-table a:text-is('399')", timeout=5000)
    assert time.time() - t0 <= 5.0 and s.page.evaluate("window.__marker") == 1
    assert s.errors == []
    s.ctx.close()


def test_models_page_draws_the_evaluation_charts(browser, zone_server):
    for uid, who in ((0, "admin"), (wf.ALICE[1], "user")):
        s = Session(browser, zone_server, uid, who)
        s.open("/models", shot=False)
        s.page.wait_for_selector("body[data-charts-drawn='6']", timeout=10000)
        assert "publish gate passed" in s.page.inner_text("#current-verdict")
        bars = s.page.locator("#chart-pr-auc-submit svg rect.bar")
        assert bars.count() == 5 and s.page.locator("#chart-pr-auc-submit rect.role-baseline").count() == 2
        assert s.page.locator("#chart-pr-auc-submit line.ref").count() == 1           # chance
        assert s.page.get_attribute("#chart-pr-submit .plot", "data-series") == "6"   # 5 models + policy
        assert s.page.locator("#chart-pr-submit circle.mark").count() == 1           # alert threshold
        assert s.page.locator("#chart-calibration-maps line.ref").count() == 1       # the diagonal
        labels = s.page.eval_on_selector_all("#chart-pr-auc-submit rect.bar", "rs => rs.map(r => r.dataset.label)")
        assert wf.HOSTILE_MODEL in labels                                             # text, not markup
        assert s.page.locator("img").count() == 0
        assert (s.page.locator(".report-dir").count() > 0) == (who == "admin")
        s.page.screenshot(path=str(SHOTS / f"{who}-models-evaluation.png"), full_page=True)
        assert s.errors == [], s.errors
        s.ctx.close()


def test_network_draws_safe_and_danger_zones(browser, zone_server):
    for uid, who in ((0, "admin"), (wf.ALICE[1], "user")):
        s = Session(browser, zone_server, uid, who)
        s.open("/network", shot=False)
        # the behaviour analysis runs in the background; the page looks again every 5 s. These
        # jobs have no I/O samples, so no place on the design axes: the zones are drawn in PCA
        s.page.wait_for_function("() => window.nomadeNetwork && window.nomadeNetwork.ready", timeout=20000)
        s.page.click("#layout-pca")
        s.page.wait_for_function("() => window.nomadeNetwork.zones >= 2", timeout=40000)
        sent = s.page.evaluate("fetch('/api/network').then(r => r.json())")
        kinds = {z["kind"] for z in sent["zones"] if z.get("shape")}
        assert kinds == {"danger", "safe"} and sent["source"] == "behaviour"
        assert s.page.evaluate("window.nomadeNetwork.count") == len(sent["nodes"])
        assert s.page.locator("#net-zones .swatch.danger").count() >= 1
        assert s.page.locator("#net-zones .swatch.safe").count() >= 1
        calls = s.page.evaluate("window.nomadeNetwork.drawCalls")
        if s.page.evaluate("window.nomadeNetwork.webgl"):
            assert calls == (3 if sent["edges"] else 2)                              # points, links, zones
        s.page.screenshot(path=str(SHOTS / f"{who}-network-zones-3d.png"))
        s.page.click("#view-2d")
        assert s.page.evaluate("window.nomadeNetwork.zones") >= 2
        s.page.screenshot(path=str(SHOTS / f"{who}-network-zones-2d.png"))
        s.page.click("#toggle-zones")
        if s.page.evaluate("window.nomadeNetwork.webgl"):
            assert s.page.evaluate("window.nomadeNetwork.drawCalls") == calls - 1    # zones hidden
        assert s.errors == [], s.errors
        s.ctx.close()


def test_running_jobs_move_as_their_samples_arrive(browser, running_server):
    from nomade.store.db import open_store
    expected = {"admin": len(wf.RUNNING_ALICE + wf.RUNNING_BOB), "user": len(wf.RUNNING_ALICE)}
    for step, (uid, who) in enumerate(((0, "admin"), (wf.ALICE[1], "user")), start=1):
        s = Session(browser, running_server, uid, who)
        s.open("/network", shot=False)
        # the running jobs are placed by the analysis' transform once it is there (background)
        s.page.wait_for_function("() => window.nomadeNetwork && window.nomadeNetwork.source === 'behaviour'"
                                 " && window.nomadeNetwork.runningLoads > 0", timeout=40000)
        s.page.click("#layout-pca")
        s.page.wait_for_selector("#live-state.on", timeout=10000)
        sent = s.page.evaluate("fetch('/api/network/running').then(r => r.json())")
        assert sent["source"] == "behaviour" and len(sent["jobs"]) == expected[who]
        assert s.page.evaluate("window.nomadeNetwork.running") == len(sent["jobs"])
        assert s.page.get_attribute("#net", "data-running") == str(len(sent["jobs"]))
        assert s.page.inner_text("#net-running") == f"{len(sent['jobs'])} running"
        if s.page.evaluate("window.nomadeNetwork.webgl"):             # one more draw call: the running layer
            net = s.page.evaluate("fetch('/api/network').then(r => r.json())")
            layers = 2 + bool(net["edges"]) + (s.page.evaluate("window.nomadeNetwork.zones") > 0)
            assert s.page.evaluate("window.nomadeNetwork.drawCalls") == layers
        before = s.page.evaluate("window.nomadeNetwork.runningAt")
        s.page.screenshot(path=str(SHOTS / f"{who}-network-running.png"))
        with open_store(running_server["dir"] / "nomade.db") as store:
            wf.add_running_samples(store, step)
        s.page.wait_for_function("(old) => window.nomadeNetwork.runningAt !== old", arg=before, timeout=10000)
        assert s.page.evaluate("window.nomadeNetwork.running") == expected[who]
        s.page.screenshot(path=str(SHOTS / f"{who}-network-running-moved.png"))
        if s.page.evaluate("window.nomadeNetwork.webgl"):              # a running point opens its job
            at = s.page.evaluate("window.nomadeNetwork.runningOnScreen(0)")
            s.page.mouse.click(at["x"], at["y"])
            s.page.wait_for_url("**/job/*", timeout=10000)          # (points may overlap: any running one)
            assert s.page.url.split("/job/")[1] in {f"{j['job_id']}?cluster={wf.CLUSTER}" for j in sent["jobs"]}
        assert s.errors == [], s.errors
        s.ctx.close()
