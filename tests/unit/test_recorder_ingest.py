"""`nomade record` -> spool -> `nomade ingest spool` -> samples, events, job_summaries; the
daemon loop; idempotence."""

import json
import shutil
import signal
import threading
from pathlib import Path

import pytest

from nomade.cli.main import cli, run_cli
from nomade.ingest.spool import load_spool, local_cluster_name
from nomade.recorder.daemon import Recorder, RecorderOptions
from nomade.recorder.sample import JobSample
from nomade.recorder.sampler import SamplerPaths
from nomade.recorder.spool import SpoolWriter, list_segments
from nomade.recorder.warning import EarlyWarning
from nomade.store.db import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroup"


def grow_samples(job="7", node="n1", n=8):
    out = []
    for i in range(n):
        mem = 50 + 10 * i
        out.append(JobSample(job_id=job, node=node, ts=1000.0 + i, cluster="c", cpu_time_s=float(i),
                             cpu_eff=0.5 if i else None, rss_mb=mem, cg_mem_mb=mem, cg_mem_limit_mb=200.0,
                             read_bytes=100 * i, write_bytes=1000 * i * i, write_local_bytes=600 * i,
                             write_network_bytes=400 * i, extra={"write_tmpfs_bytes": 7 * i, "cg_ws_mb": mem}))
    return out


def spool_with(tmp_path, samples, segment_bytes=None):
    d = tmp_path / "spool"
    w = SpoolWriter(d, max_bytes=1 << 20, segment_bytes=segment_bytes)
    ew = EarlyWarning()
    for s in samples:
        w.write([s.to_record(0)] + [e.to_record() for e in ew.observe([s])])
    w.close()
    return d


def test_ingest_is_idempotent_and_builds_summaries(tmp_path):
    d = spool_with(tmp_path, grow_samples() + grow_samples(node="n2"), segment_bytes=1500)
    with open_store(tmp_path / "db.sqlite") as store:
        r1 = load_spool(store, [d], keep=True)
        r2 = load_spool(store, [d], keep=True)
        assert (r1.samples_new, r1.events_new) == (16, 2)
        assert (r2.samples_new, r2.events_new, r2.samples_seen) == (0, 0, 16)
        assert store.conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 16
        row = store.conn.execute("SELECT * FROM job_summaries WHERE job_id = '7'").fetchone()
        assert row["sample_count"] == 16 and row["nodes"] == 2
        assert row["peak_rss_mb"] == 120 and row["cg_mem_limit_mb"] == 200
        assert row["mean_cpu_eff"] == pytest.approx(0.5)
        assert row["write_bytes"] == 2 * 49000                   # last cumulative, summed over nodes
        assert (row["write_local_bytes"], row["write_network_bytes"], row["write_tmpfs_bytes"]) == (8400, 5600, 98)
        assert row["peak_write_rate"] == pytest.approx(13000.0)  # 49000 - 36000 in 1 s
        ev = store.conn.execute("SELECT * FROM events ORDER BY node").fetchall()
        assert [e["kind"] for e in ev] == ["memory_projection"] * 2
        assert json.loads(ev[0]["detail"])["ttl_s"] > 0 and ev[0]["created_at"] < 1007


def test_closed_segments_are_deleted_unless_kept_and_bad_lines_quarantined(tmp_path):
    d = spool_with(tmp_path, grow_samples(), segment_bytes=600)
    segs = list_segments(d)
    assert len(segs) > 2
    with open(segs[0], "a") as fh:
        fh.write("this is not json\n")
    with open(segs[-1], "a") as fh:
        fh.write('{"v": 1, "type": "sam')                   # the writer is mid-line
    with open_store(tmp_path / "db.sqlite") as store:
        r = load_spool(store, [d])
        assert r.segments_deleted == len(segs) - 1 and r.bad_lines == 1
        assert list_segments(d) == [segs[-1]]
        q = store.conn.execute("SELECT reason, location FROM quarantine").fetchall()
        assert len(q) == 1 and q[0]["reason"] == "not a JSON object"
        assert load_spool(store, [d]).samples_new == 0


def test_unknown_schema_version_is_quarantined(tmp_path):
    d = tmp_path / "spool"
    d.mkdir()
    (d / "seg-000000001.jsonl").write_text(json.dumps({"v": 99, "job_id": "1"}) + "\n")
    (d / "seg-000000002.jsonl").write_text("")
    with open_store(tmp_path / "db.sqlite") as store:
        r = load_spool(store, [d])
        assert r.bad_lines == 1 and r.samples_new == 0


def test_cluster_name_from_slurm_conf(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("# x\nClusterName=hpc1\nSlurmctldHost=a\n")
    assert local_cluster_name(conf) == "hpc1"
    assert local_cluster_name(tmp_path / "missing.conf") == "local"


def fixture_recorder(tmp_path, interval=0.01):
    root = tmp_path / f"tree{interval}"
    shutil.copytree(FIX / "v2_slurm_2205_nfs_lustre", root, symlinks=True)
    opts = RecorderOptions(spool_dir=tmp_path / "spool", interval_s=interval, cluster="c", node="n1",
                           paths=SamplerPaths(proc=root / "proc", cgroup=root / "cgroup"), use_gpu=False)
    return Recorder(opts)


def test_daemon_loop_passes_and_stops_on_signal(tmp_path):
    rec = fixture_recorder(tmp_path)
    assert rec.run(max_passes=3) == 3
    with open_store(tmp_path / "db.sqlite") as store:
        assert load_spool(store, [tmp_path / "spool"]).samples_new == 6   # 2 jobs x 3 passes
    rec2 = fixture_recorder(tmp_path, interval=0.05)
    rec2.install_signal_handlers()
    try:
        threading.Timer(0.2, lambda: signal.raise_signal(signal.SIGTERM)).start()
        passes = rec2.run()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert passes >= 2


def test_cli_record_once_json_then_ingest_twice(tmp_path, capsys):
    root = tmp_path / "tree"
    shutil.copytree(FIX / "hybrid_systemd_v1_slurm", root, symlinks=True)
    base = ["--data-dir", str(tmp_path / "data")]
    rc = run_cli(cli, base + ["record", "--once", "--json", "--proc-root", str(root / "proc"),
                              "--cgroup-root", str(root / "cgroup")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [s["job_id"] for s in out["samples"]] == ["77"]
    assert out["samples"][0]["extra"]["nprocs"] == 2
    for expected in (1, 0):
        assert run_cli(cli, base + ["ingest", "spool", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["samples_new"] == expected
    assert run_cli(cli, base + ["record", "--once", "--proc-root", str(root / "proc"),
                                "--cgroup-root", str(root / "cgroup"), "--interval", "-1"]) == 1
