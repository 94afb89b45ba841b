"""Dashboard render times on a big store (docs/benchmarks.md, "Dashboard").

    .venv/bin/python bench/dashboard_render.py                 # 1,000,000 jobs
    .venv/bin/python bench/dashboard_render.py --jobs 200000 --keep /tmp/dash-bench

1. a store with --jobs synthetic jobs (200 users, 4 partitions, outcomes mixed; a submit-stage
   score for every 10th job), written through ``store.jobs.upsert_jobs`` in batches, and a week
   of one node's collector metrics through ``nomade collect``'s own writer (skipped: none);
2. ``nomade dashboard`` in a child process (uvicorn), logged in as root with a token;
3. headless Debian chromium (Playwright): per page, the time to first byte, to DOMContentLoaded
   (the page is rendered by the server) and to the load event, 5 visits each (the first cold), for Overview, Jobs, Jobs page 1000, a
   filtered Jobs page (failed, HIGH risk) and a Job page;
4. the Network view with 20,000 and 100,000 points: payload size, time until drawn, draw calls,
   mean frame time over 60 requestAnimationFrame frames with the camera turning, and the same
   with the layers hidden (what the page costs without them); software rendering (SwiftShader);
5. the server's RSS (VmRSS, VmHWM) at the end.
"""

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nomade.jobrecord import JobRecord
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs
from nomade.store.scores import Score, write_scores

STATES = ["COMPLETED"] * 6 + ["FAILED"] * 2 + ["TIMEOUT", "OUT_OF_MEMORY", "CANCELLED"]
T0 = 1_700_000_000.0


def build_store(path: Path, n: int, batch: int = 50_000) -> float:
    rnd = random.Random(7)
    started = time.monotonic()
    reasons = json.dumps([{"feature": "user_fail_rate", "value": 0.3, "contribution": 0.7},
                          {"feature": "req_mem_mb", "value": 8192, "contribution": -0.2}])
    with open_store(path) as store:
        for lo in range(0, n, batch):
            recs, scores = [], []
            for i in range(lo, min(n, lo + batch)):
                u = rnd.randrange(200)
                state = rnd.choice(STATES)
                submit = T0 + i * 30.0
                recs.append(JobRecord("big", str(1_000_000 + i), job_id_raw=1_000_000 + i, user=f"user{u:03d}",
                                      uid=20000 + u, name=f"app{rnd.randrange(500)}", state=state, is_final=1,
                                      partition=f"p{rnd.randrange(4)}", submit_time=submit,
                                      start_time=submit + 60, end_time=submit + 3660, elapsed_s=3600,
                                      req_cpus=rnd.choice([1, 4, 16, 64]), req_mem_mb=float(rnd.choice([2048, 8192, 65536])),
                                      timelimit_s=rnd.choice([3600, 14400, 86400]),
                                      exit_code=0 if state == "COMPLETED" else 1, exit_signal=0))
                if i % 10 == 0:
                    scores.append(Score("big", str(1_000_000 + i), "submit", "m1", rnd.random(), None, reasons, submit))
            upsert_jobs(store, recs, "bench")
            write_scores(store, scores)
            print(f"  {min(n, lo + batch):>9,} jobs  {time.monotonic() - started:6.1f} s", flush=True)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    (data_dir / "empty.toml").write_text("")
    env = dict(os.environ, NOMADE_DATA_DIR=str(data_dir), NOMADE_CONFIG=str(data_dir / "empty.toml"))
    proc = subprocess.Popen([sys.executable, "-c", "from nomade.cli.main import main; main()", "dashboard",
                             "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the dashboard did not start: " + proc.stderr.read().decode()[-2000:])


def rss(pid: int) -> str:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return f"VmRSS {fields.get('VmRSS')}, VmHWM {fields.get('VmHWM')}"


PAINT = """() => { const n = performance.getEntriesByType('navigation')[0];
  const p = performance.getEntriesByName('first-contentful-paint')[0];
  return {fcp: p ? p.startTime : null, ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd,
          load: n.loadEventEnd}; }"""


def time_pages(page, url: str, job_id: str, visits: int) -> None:
    """Per page: server time to first byte, DOMContentLoaded (the page rendered: everything is
    server-side, scripts only decorate) and load, from the Navigation Timing entry (ms)."""
    pages = [("Overview", "/"), ("Jobs", "/jobs"), ("Jobs page 1000", "/jobs?page=1000"),
             ("Jobs failed+HIGH", "/jobs?state=failed&level=HIGH"), ("Job", f"/job/{job_id}")]
    print(f"\n| page | first visit: TTFB / DOMContentLoaded / load (ms) | median of next {visits - 1} |")
    print("|---|---|---|")
    for label, path in pages:
        runs = []
        for _ in range(visits):
            page.goto(url + path, wait_until="load")
            page.wait_for_timeout(50)
            runs.append(page.evaluate(PAINT))

        def fmt(rs):
            return " / ".join(f"{statistics.median(r[k] for r in rs):.0f}" for k in ("ttfb", "dcl", "load"))
        print(f"| {label} | {fmt(runs[:1])} | {fmt(runs[1:])} |", flush=True)


def time_network(page, url: str, points: int) -> None:
    t0 = time.monotonic()
    page.goto(f"{url}/network?limit={points}", wait_until="load")
    page.wait_for_function("() => window.nomadeNetwork && window.nomadeNetwork.ready", timeout=300_000)
    drawn = time.monotonic() - t0
    size = page.evaluate(f"fetch('/api/network?limit={points}').then(r => r.text()).then(t => t.length)")
    n = page.evaluate("window.nomadeNetwork.count")
    calls = page.evaluate("window.nomadeNetwork.drawCalls")
    raf = page.evaluate("window.nomadeNetwork.measureRaf(60)")
    empty = page.evaluate("window.nomadeNetwork.measureRaf(60, true)")
    print(f"| {points:,} | {n:,} | {size / 1e6:.1f} MB | {drawn:.2f} s | {calls} | {raf:.1f} ms | {empty:.1f} ms |",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--visits", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="data dir to build in / reuse (kept)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="nomade-dash-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    store_path = data_dir / "nomade.db"
    if not store_path.exists():
        print(f"building {args.jobs:,} jobs in {store_path}")
        took = build_store(store_path, args.jobs)
        print(f"built in {took:.0f} s, {store_path.stat().st_size / 2**20:.0f} MiB")
    from nomade.web import auth
    token = auth.make_token(data_dir / "web-tokens", os.getuid(), data_dir / "token")
    port = free_port()
    server = start_server(data_dir, port)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
            page = b.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{url}/login?token={token}")
            job_id = page.evaluate("fetch('/api/jobs').then(r => r.json()).then(d => d.jobs[0].job_id)")
            time_pages(page, url, job_id, args.visits)
            print(f"\nserver after the pages: {rss(server.pid)}")
            print("\n| points asked | drawn | payload (JSON) | page to drawn | draw calls | frame (60 x rAF) "
                  "| frame, layers hidden |")
            print("|---|---|---|---|---|---|---|")
            for n in (20_000, 100_000):
                time_network(page, url, n)
            b.close()
        print(f"\nserver at the end (the behaviour analysis may be running in the background): {rss(server.pid)}")
    finally:
        server.terminate()
        server.wait(10)
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
