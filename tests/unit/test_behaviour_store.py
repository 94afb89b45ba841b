"""Behaviour vectors read from a store (accounting, recorder summaries, nodestats), the
commands and their privacy, and the dashboard export with hostile names."""

import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.behaviour import analysis, export, vectors
from nomade.cli import profiles_cmd, recommend_cmd, similarity_cmd
from nomade.cli.main import cli
from nomade.collectors.base import Metric
from nomade.ingest.spool import rebuild_summaries
from nomade.jobrecord import REQ_MEM_JOB, JobRecord
from nomade.store import behaviour as store_behaviour
from nomade.store import metrics as store_metrics
from nomade.store import open_store
from nomade.store.jobs import upsert_jobs
from nomade.store.recorder import SAMPLE_COLS, add_samples
from nomade.whyservice.access import Caller

T0 = 1714521600.0
HOSTILE_USER = 'eve"\n</script><b>\x1b[31m,;'
HOSTILE_NAME = "job\n\"name\"\x00\t,|{}"
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


def _jobs(n=240, seed=0):
    """alice (uid 1000): CPU-bound jobs writing to local disk, all succeed; bob (uid 1001):
    idle jobs writing to NFS, most fail; the hostile user (uid 1002) a few."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 3
        user, uid = [("alice", 1000), ("bob", 1001), (HOSTILE_USER, 1002)][kind if i % 12 else 2]
        start = T0 + i * 600.0
        elapsed = int(rng.integers(600, 3600))
        fail = kind == 1 and rng.random() < 0.8
        out.append(JobRecord("c1", str(100 + i), job_id_raw=100 + i, user=user, uid=uid, name=HOSTILE_NAME,
                             state="FAILED" if fail else "COMPLETED", is_final=1, exit_code=1 if fail else 0,
                             submit_time=start - 60, start_time=start, end_time=start + elapsed,
                             elapsed_s=elapsed, timelimit_s=7200, alloc_cpus=4, req_nodes=1,
                             total_cpu_s=(0.9 if kind == 0 else 0.1) * elapsed * 4,
                             req_mem_mb=4000, req_mem_per_cpu=REQ_MEM_JOB, max_rss_mb=2000.0 + kind * 500,
                             node_list=f"n[{kind + 1}-{kind + 2}]"))
    out.append(JobRecord("c1", "999", job_id_raw=999, user="alice", uid=1000, state="RUNNING",
                         is_final=0, submit_time=T0))
    return out


def _samples(jobs):
    rows = []
    for j in jobs:
        if not j.is_final or int(j.job_id) % 5 == 0:      # every 5th job: no recorder data
            continue
        local = (j.user == "alice")
        for t, frac in ((j.start_time + 30, 0.5), (j.start_time + 90, 1.0)):
            w = int(frac * 800 * MiB)
            rec = {"cluster": "c1", "job_id": j.job_id, "node": "n1", "ts": t, "cpu_eff": 0.5, "rss_mb": 1000.0,
                   "write_bytes": w, "write_local_bytes": w if local else 0,
                   "write_network_bytes": 0 if local else w, "extra": json.dumps({"write_tmpfs_bytes": 0})}
            rows.append(tuple(rec.get(k) for k in SAMPLE_COLS))
    return rows


@pytest.fixture
def data_dir(tmp_path):
    jobs = _jobs()
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
        add_samples(store, _samples(jobs))
        rebuild_summaries(store, [("c1", j.job_id) for j in jobs], now=T0)
        for host, wait in (("n1", 2.0), ("n2", 10.0), ("n3", 30.0)):
            ms = [Metric.of("node.iowait_pct", wait, host=host, ts=T0 + k * 60.0) for k in range(0, 2400, 5)]
            store_metrics.write_cycle(store, "c1", "nodestats", ms, T0)
    return tmp_path


def _set(data_dir):
    with open_store(data_dir / "nomade.db") as store:
        return vectors.load(store, "c1")


def test_vectors_from_the_store_missing_sources_are_nan(data_dir):
    b = _set(data_dir)
    assert len(b) == 240 and "999" not in set(b.job_id)          # ended jobs only
    col = {n: j for j, n in enumerate(b.names)}
    i = b.index_of("101")                                         # bob: NFS writes, idle
    assert b.X[i, col["cpu_eff"]] == pytest.approx(0.1)
    assert b.X[i, col["mem_eff"]] == pytest.approx(2500 / 4000)
    assert b.X[i, col["nfs_share"]] == 1.0
    assert b.X[i, col["nfs_write"]] == pytest.approx(math.log1p(800))
    # nodes n[2-3]: mean of the two nodes' iowait over the run
    assert b.X[i, col["io_wait"]] == pytest.approx(20.0)
    j = b.index_of("105")                                         # no recorder summary
    assert np.isnan(b.X[j, col["write_log"]]) and np.isnan(b.X[j, col["nfs_share"]])
    assert np.isnan(b.X[:, col["gpu_util"]]).all()               # no GPU data: missing, not 0
    assert np.isnan(b.X[:, col["swap"]]).all()
    assert b.health[b.y == 1].max() <= 0.3 and b.health[b.y == 0].min() >= 0.5


def test_store_reads_hostile_rows_and_empty_metrics(data_dir):
    with open_store(data_dir / "nomade.db") as store:
        rows = store_behaviour.ended_jobs(store, "c1", job_ids=["108", "no-such"])
        assert len(rows) == 1 and rows[0][store_behaviour.ENDED_COLUMNS.index("user")] == HOSTILE_USER
        assert store_behaviour.node_stat_points(store, []) == {}
        assert store_behaviour.node_stat_points(store, ["node.swap_in_pps"], "c1") == {}


def test_analysis_finds_bobs_failures_clustered(data_dir):
    b = _set(data_dir)
    a = analysis.analyse(b, analysis.Options(permutations=99, min_count=10))
    s = analysis.network_summary(a)
    assert s["assortativity"] > 0.3 and s["assortativity_p_value"] <= 0.02
    assert any(h["kind"] == "danger" and h["feature"] in ("cpu_eff", "nfs_share", "io_wait", "nfs_write")
               for h in s["hotspots"]), s["hotspots"]
    json.dumps(s, allow_nan=False)


def _run(monkeypatch, data_dir, args, uid):
    caller = Caller(uid=uid, gid=uid)
    for mod in (similarity_cmd, profiles_cmd, recommend_cmd):
        monkeypatch.setattr(mod, "current_caller", lambda: caller)
    monkeypatch.setattr(Caller, "name", property(lambda self: {0: "root", 1000: "alice", 1001: "bob"}.get(self.uid)))
    monkeypatch.setenv("NOMADE_BEHAVIOUR_MIN_COUNT", "10")
    monkeypatch.setenv("NOMADE_BEHAVIOUR_PERMUTATIONS", "19")
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir)] + args)


def test_find_similar_of_another_users_job_is_refused(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "101", "--json"], 1000)
    assert r.exit_code != 0 and "belongs to another user" in str(r.exception or r.output)
    own = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "103", "--json"], 1000)
    assert own.exit_code == 0, own.output
    res = json.loads(own.output)
    assert res["job_id"] == "103" and res["similar"] and res["hidden"] >= 0
    assert all(s["user"] is None for s in res["similar"])
    with open_store(data_dir / "nomade.db") as store:
        owners = {row[1]: row[3] for row in store_behaviour.ended_jobs(store, "c1")}
    assert all(owners[s["job_id"]] == 1000 for s in res["similar"])   # only alice's own listed
    admin = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "101", "--json"], 0)
    assert admin.exit_code == 0 and json.loads(admin.output)["similar"][0]["user"] == "bob"


def test_unknown_job_and_bad_settings_are_one_clear_error(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "99999"], 0)
    assert r.exit_code != 0 and "not an ended job" in str(r.exception)
    r = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "nope\n42"], 0)
    assert r.exit_code != 0 and str(r.exception) == "'nope\\n42' is not a job id"   # as nomade-why says it
    r = _run(monkeypatch, data_dir, ["profiles", "--job", "1;rm"], 0)
    assert r.exit_code != 0 and "is not a job id" in str(r.exception)
    monkeypatch.setenv("NOMADE_BEHAVIOUR_SIMILARITY", "jaccard")
    r = _run(monkeypatch, data_dir, ["similarity"], 0)
    assert r.exit_code != 0 and "behaviour.similarity" in str(r.exception)


def test_profile_of_another_users_job_is_refused(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["profiles", "--job", "101"], 1000)
    assert r.exit_code != 0 and "belongs to another user" in str(r.exception)
    r = _run(monkeypatch, data_dir, ["profiles", "--job", "103", "--json"], 1000)
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.output)) >= {"profile", "name", "anomaly"}


def test_profiles_hide_small_groups_from_users(monkeypatch, data_dir):
    monkeypatch.setenv("NOMADE_BEHAVIOUR_MIN_COUNT", "10")
    b = _set(data_dir)
    a = analysis.analyse(b, analysis.Options(min_count=10_000), with_network=False)
    user_view = analysis.profiles_summary(a, Caller(uid=1000, gid=1000))
    assert user_view["profiles"] == [] and user_view["hidden_profiles"] >= 1
    admin_view = analysis.profiles_summary(a, None)
    assert len(admin_view["profiles"]) == admin_view["chosen_k"]
    r = _run(monkeypatch, data_dir, ["profiles", "--json"], 1000)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["profiles"]


def test_recommend_other_user_refused_and_own_works(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["recommend", "--user", "bob", "--json"], 1000)
    assert r.exit_code != 0 and "only root and admins" in str(r.exception)
    own = _run(monkeypatch, data_dir, ["recommend", "--json"], 1000)
    assert own.exit_code == 0, own.output
    res = json.loads(own.output)
    assert res["user"] == "alice" and res["scores"]["scores"]["cpu"] == pytest.approx(0.9)
    site = _run(monkeypatch, data_dir, ["recommend", "--json"], 0)
    assert site.exit_code == 0 and {u["user"] for u in json.loads(site.output)["users"]} >= {"alice", "bob"}
    (defaults,) = json.loads(site.output)["defaults"]            # one group: jobs without a partition
    assert defaults["partition"] == "" and defaults["successful_jobs"] == int((_set(data_dir).y == 0).sum())
    assert 10 < defaults["runtime_min"]["median"] < 60 and defaults["default_time_limit_min"] > 50
    assert defaults["requested_time_limit_min"] == 120.0


def test_drift_record_is_for_admins_and_writes_metrics(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["profiles", "--drift", "--record"], 1000)
    assert r.exit_code != 0
    monkeypatch.setenv("NOMADE_BEHAVIOUR_DRIFT_DAYS", "0.5")
    r = _run(monkeypatch, data_dir, ["profiles", "--drift", "--record", "--json"], 0)
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["metrics_written"] >= 1
    with open_store(data_dir / "nomade.db") as store:
        pts = store_metrics.series(store, "behaviour.drift", cluster="c1", labels={"feature": "cpu_eff"})
    assert len(pts) == 1


def test_export_format_privacy_and_hostile_names(monkeypatch, data_dir, tmp_path):
    with open_store(data_dir / "nomade.db") as store:
        admin = export.network_export(store, "c1", limit=100)
        user = export.network_export(store, "c1", viewer=Caller(uid=1000, gid=1000))
    for data in (admin, user):
        text = json.dumps(data, allow_nan=False)            # strict JSON: no NaN anywhere
        assert json.loads(text) == data
        assert data["version"] == 1 and data["axes"] == ["nfs_write", "local_write", "io_wait"]
        for key in ("generated_at", "cluster", "nodes", "edges", "zones", "profiles"):
            assert key in data
        n = len(data["nodes"])
        assert all(0 <= e[0] < n and 0 <= e[1] < n for e in data["edges"])
        node = data["nodes"][0]
        assert set(node) >= {"job_id", "user", "outcome", "failed", "health", "profile", "xyz", "pca"}
        assert len(node["xyz"]) == 3 and len(node["pca"]) == 3
    assert len(admin["nodes"]) == 100 and admin["sampled"]
    assert HOSTILE_USER in {nd["user"] for nd in admin["nodes"]}
    assert all(nd["user"] is None for nd in user["nodes"])
    assert HOSTILE_USER not in json.dumps(user)
    own_ids = {nd["job_id"] for nd in user["nodes"] if nd["own"]}
    assert own_ids and all(nd["job_id"] is None for nd in user["nodes"] if not nd["own"])
    out = tmp_path / "net.json"
    r = _run(monkeypatch, data_dir, ["similarity", "--export", str(out), "--json"], 0)
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["nodes"] and (out.stat().st_mode & 0o077) == 0


def test_summary_command_text_and_json(monkeypatch, data_dir):
    r = _run(monkeypatch, data_dir, ["similarity"], 1000)
    assert r.exit_code == 0 and "failure assortativity" in r.output
    r = _run(monkeypatch, data_dir, ["similarity", "--similarity", "simpson", "--json"], 1000)
    assert r.exit_code == 0 and json.loads(r.output)["similarity"] == "simpson"


def test_vectors_survive_hostile_and_odd_rows():
    cols = store_behaviour.ENDED_COLUMNS
    base = dict.fromkeys(cols)
    base.update(cluster="c", job_id="1", user=HOSTILE_USER, uid=5, state="COMPLETED",
                start_time=10.0, end_time=20.0, elapsed_s=10)
    odd = [
        dict(base, node_list="n[1-3", alloc_cpus=0, total_cpu_s=5.0),        # unclosed bracket, 0 cores
        dict(base, job_id="2\n3", node_list="a,,b[x-y],\x00", elapsed_s=-5),  # negative elapsed
        dict(base, job_id="4", state="CANCELLED", cancelled_by=0, req_mem_mb=-1, max_rss_mb=10),
        dict(base, job_id="5", state=None, s_write_bytes=2 ** 63, s_write_network_bytes=0,
             s_write_local_bytes=0, s_write_tmpfs_bytes=0),
    ]
    rows = [tuple(r[c] for c in cols) for r in odd]
    points = {("node.iowait_pct", "n1"): [(15.0, 4.0)], ("node.iowait_pct", "n[1-3"): [(15.0, 99.0)]}
    b = vectors.build(rows, cols, points)
    col = {n: j for j, n in enumerate(b.names)}
    assert len(b) == 4 and list(b.job_id) == ["1", "2\n3", "4", "5"]
    assert np.isnan(b.X[0, col["cpu_eff"]]) and np.isnan(b.X[0, col["cores_log"]])
    assert np.isnan(b.X[1, col["runtime_log"]])
    assert np.isnan(b.X[2, col["mem_eff"]])
    assert b.outcome[2] == "cancelled_other" and b.y[2] == 1
    assert b.outcome[3] is None and b.y[3] == -1 and np.isnan(b.health[3])
    assert np.isnan(b.X[3, col["nfs_share"]]) and b.X[3, col["write_log"]] > 0
    assert b.X[0, col["io_wait"]] == 99.0 or np.isnan(b.X[0, col["io_wait"]])   # a literal host name only


# ------------------------------------------------------------------ --find-similar through the service

@pytest.fixture
def similar_service(data_dir):
    """A real nomade-why service answering op "similar" on data_dir's store; its socket path."""
    import shutil
    import tempfile
    import threading
    from pathlib import Path

    from nomade.whyservice.server import SimilarLookups, WhyServer
    sock_dir = Path(tempfile.mkdtemp(prefix="nomade-why-"))
    os.chmod(sock_dir, 0o755)      # other uids reach the socket (it is 0666)
    similar = SimilarLookups(data_dir / "nomade.db", data_dir / "cache", 2000, 10)
    server = WhyServer(sock_dir / "why.sock", data_dir / "nomade.db", "no-such-group-xyz", similar=similar)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.socket_path
    server.shutdown()
    server.server_close()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_find_similar_through_the_service_is_the_direct_answer(monkeypatch, data_dir, similar_service):
    from nomade.whyservice.client import ask
    direct = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "101", "-k", "5", "--json"], 0)
    assert direct.exit_code == 0, direct.output
    assert ask(similar_service, "101", op="similar", extra={"k": 5}) == json.loads(direct.output)
    monkeypatch.setenv("NOMADE_PRIVACY_SOCKET", str(similar_service))
    via = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "101", "-k", "5", "--service", "--json"], 0)
    assert via.exit_code == 0 and json.loads(via.output) == json.loads(direct.output), via.output
    text = _run(monkeypatch, data_dir, ["similarity", "--find-similar", "101", "--service"], 0)
    assert text.exit_code == 0 and text.output.startswith("job 101 (failed"), text.output


@pytest.mark.parametrize("k", [0, 1001, "5", True, None, [5]])
def test_find_similar_service_refuses_a_bad_k(similar_service, k):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(similar_service))
    s.sendall(json.dumps({"op": "similar", "job_id": "103", "k": k}).encode() + b"\n")
    resp = json.loads(s.makefile("rb").readline())
    s.close()
    assert resp["ok"] is False and resp["kind"] == "bad_request" and "k must be" in resp["error"], resp


def test_find_similar_service_unknown_job_is_one_clear_error(similar_service, monkeypatch):
    from nomade.behaviour import cache
    from nomade.errors import NomadeError
    from nomade.whyservice.client import ask
    with pytest.raises(NomadeError, match="not an ended job"):
        ask(similar_service, "99999", op="similar")
    # text that is no job id is refused as nomade-why refuses it, before the index is asked
    # (a changed store would make the index wait for a build)
    monkeypatch.setattr(cache.Warm, "get", lambda *a, **k: pytest.fail("index asked for a bad id"))
    for bad in ("nope\n42", "1;rm", "-5", "9" * 30):
        with pytest.raises(NomadeError, match="is not a job id"):
            ask(similar_service, bad, op="similar")


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root (to act as another uid) and /usr/bin/python3")
def test_find_similar_service_privacy_for_a_real_peer(data_dir, similar_service):
    """A real process as alice's uid (SO_PEERCRED, not a claim in the request): bob's job is
    refused; her own lists only her jobs, without user names; a claimed uid in the request is
    ignored."""
    import subprocess
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])\n"
            "s.sendall(sys.argv[2].encode() + b'\\n')\n"
            "print(s.makefile('rb').readline().decode())\n")

    def as_alice(request):
        def drop():
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
        out = subprocess.run(["/usr/bin/python3", "-c", code, str(similar_service), json.dumps(request)],
                             capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin"}, preexec_fn=drop)
        return json.loads(out.stdout)

    bob = as_alice({"op": "similar", "job_id": "101", "uid": 1001, "user": "bob"})
    assert bob["ok"] is False and bob["kind"] == "denied", bob
    own = as_alice({"op": "similar", "job_id": "103", "k": 100})
    assert own["ok"] is True, own
    res = own["answer"]
    with open_store(data_dir / "nomade.db") as store:
        owners = {row[1]: row[3] for row in store_behaviour.ended_jobs(store, "c1")}
    assert res["similar"] and all(owners[s["job_id"]] == 1000 and s["user"] is None for s in res["similar"])
    assert res["hidden"] > 0            # bob's and eve's similar jobs are counted, not listed


def test_warm_index_answers_from_memory_and_rebuilds_in_the_background(data_dir, monkeypatch):
    """A new job changes the store's mark: a job the held index knows is answered from it at once
    (a rebuild starts in the background); the new job waits for a build that holds it."""
    import threading

    from nomade.behaviour import cache
    builds = []
    real = cache.similarity_lookup
    gate = threading.Event()

    def counting(store, directory, cluster=None, now=None):
        builds.append(threading.current_thread().name)
        if threading.current_thread().name == "nomade-similar-index":
            gate.wait(10)
        return real(store, directory, cluster, now)
    monkeypatch.setattr(cache, "similarity_lookup", counting)
    warm = cache.Warm(data_dir / "cache", lambda: open_store(data_dir / "nomade.db", readonly=True, migrate=False))
    b, _ = warm.get("103")
    assert builds == ["MainThread"] and b.index_of("103") is not None
    assert warm.get("103")[0] is b and builds == ["MainThread"]       # current: no build
    new = _jobs()[5]
    new.job_id, new.job_id_raw = "5000", 5000
    with open_store(data_dir / "nomade.db") as store:
        upsert_jobs(store, [new], "test")
    assert warm.get("103")[0] is b                                       # held index answers
    for _ in range(100):
        if "nomade-similar-index" in builds:
            break
        threading.Event().wait(0.02)
    assert builds == ["MainThread", "nomade-similar-index"]
    gate.set()
    b2, _ = warm.get("5000")                  # waits for the background build, then holds the new job
    assert b2.index_of("5000") is not None
    assert builds.count("MainThread") <= 2
