"""`nomade export --anonymize` (nomade.export): keyed pseudonyms, nothing identifying in the bytes,
SWF that nomade's own SWF import reads back, the parquet schema, the secret file's checks and
the admin-only rule. On SQLite and on PostgreSQL (tests/pg_fixture.py) where the store matters."""

import io
import os
import pwd

import pytest

from nomade import config as config_mod
from nomade.cli import export_cmd
from nomade.cli.main import cli, run_cli
from nomade.errors import AccessDenied, ConfigError, NomadeError
from nomade.export import (MIN_SECRET_BYTES, PARQUET_FIELDS, Pseudonyms, check_may_export,
                           export_jobs, read_secret)
from nomade.ingest.swf import import_swf
from nomade.jobrecord import REQ_MEM_CPU, REQ_MEM_JOB, REQ_MEM_NODE, JobRecord, StepRecord
from nomade.store import open_store
from nomade.store.jobs import upsert_jobs
from nomade.whyservice.access import Caller

T0 = 1714521600.0  # 2024-05-01 00:00 UTC
SECRET = b"k" * 40
# what must never appear in an export, whatever the field: names with newlines, SWF's comment
# and field separators, sacct's delimiters, control bytes, digits, another user's name
HOSTILE = {
    "user": ["alice", "bob\n; UnixStartTime: 0", "carol 1 2 3", "dave|x\x1fy"],
    "grp": ["physics-lab", "chem\tgroup"],
    "account": ["proj-secret-42", "acct;\r\n-1"],
    "name": ["train_resnet_alice", "job\nname 7 8 9\x00end", "-1 -1 -1", "carol's ; run"],
    "node_list": ["gpunode[07-08],cpuhost3", "weird\nhost"],
    "work_dir": ["/home/alice/project/run1", "/scratch/bob\n/x"],
    "submit_line": ["sbatch --wrap 'secret-command --token=abcdef'"],
}
SENSITIVE = ([v for k, vs in HOSTILE.items() for v in vs]
             + ["gpunode07", "gpunode08", "cpuhost3", "testcluster", "4242", "secret-command"])
# pieces of those names, which must not leak either
FRAGMENTS = ["alice", "carol", "dave", "physics", "proj-secret", "resnet", "gpunode",
             "cpuhost", "weird", "scratch", "/home", "token=", "wrap", "4242"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


def _jobs(n=40):
    states = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "RUNNING"]
    out = []
    for i in range(n):
        h = {k: vs[i % len(vs)] for k, vs in HOSTILE.items()}
        state = states[i % len(states)]
        final = 0 if state == "RUNNING" else 1
        start = T0 + 100 * i + 30 + i % 7
        out.append(JobRecord(
            "testcluster", str(4242000 + i), job_id_raw=4242000 + i, name=h["name"], user=h["user"],
            uid=1000 + i % 4, grp=h["grp"], account=h["account"], partition="gpu", qos="normal",
            submit_time=T0 + 100 * i, req_cpus=1 + i % 8, req_nodes=1, req_mem_mb=2000.0 + i,
            req_mem_per_cpu=[REQ_MEM_CPU, REQ_MEM_JOB, REQ_MEM_NODE][i % 3],
            timelimit_s=3600 + i, work_dir=h["work_dir"], submit_line=h["submit_line"], state=state,
            state_raw=f"{state} by {1000 + i % 4}" if state == "CANCELLED" else state,
            cancelled_by=1000 + i % 4 if state == "CANCELLED" else None, is_final=final,
            exit_code=i % 3, exit_signal=0, start_time=start,
            end_time=None if not final else start + 60 * (i + 1), elapsed_s=60 * (i + 1),
            alloc_cpus=1 + i % 8, alloc_nodes=1, node_list=h["node_list"],
            total_cpu_s=30.0 * (i + 1), max_rss_mb=512.0 + i,
            steps=[StepRecord("batch", name="batch", node_list=h["node_list"])]))
    return out


@pytest.fixture
def store(store_target):
    s = open_store(store_target)   # SQLite, then PostgreSQL
    upsert_jobs(s, _jobs(), "test")
    yield s
    s.close()


def _export(store, fmt, secret=SECRET, tmp=None, **kw):
    if fmt == "swf" and tmp is None:
        buf = io.StringIO()
        res = export_jobs(store, "swf", secret, stream=buf, **kw)
        return res, buf.getvalue().encode("utf-8", "surrogatepass")
    out = tmp / f"export.{fmt}"
    res = export_jobs(store, fmt, secret, out=out, **kw)
    return res, out.read_bytes()


def test_swf_round_trip_through_nomades_import(store, tmp_path):
    res, data = _export(store, "swf", tmp=tmp_path, batch=7)   # several batches
    assert res.jobs == 40 and (tmp_path / "export.swf").stat().st_mode & 0o777 == 0o600
    back = open_store(tmp_path / "back.db")
    imported = import_swf(back, tmp_path / "export.swf", cluster="shared")
    assert imported.counts.new == 40 and imported.counts.quarantined == 0
    got = {r["job_id"]: dict(r) for r in back.conn.execute("SELECT * FROM jobs")}
    orig = sorted(_jobs(), key=lambda j: j.submit_time)
    assert sorted(int(k) for k in got) == list(range(1, 41))       # numbered in submit order
    for k, j in enumerate(orig, start=1):
        r = got[str(k)]
        assert r["submit_time"] == j.submit_time
        assert r["start_time"] == j.start_time
        assert r["elapsed_s"] == j.elapsed_s and r["alloc_cpus"] == j.alloc_cpus
        assert r["req_cpus"] == j.req_cpus and r["timelimit_s"] == j.timelimit_s
        assert r["max_rss_mb"] == pytest.approx(j.max_rss_mb)
        assert r["total_cpu_s"] == pytest.approx(j.total_cpu_s, rel=1e-3)
        per_cpu = {REQ_MEM_CPU: j.req_mem_mb, REQ_MEM_JOB: j.req_mem_mb / j.req_cpus,
                   REQ_MEM_NODE: j.req_mem_mb / j.req_cpus}[j.req_mem_per_cpu]
        assert r["req_mem_mb"] == pytest.approx(per_cpu, rel=1e-3)
        want = {"COMPLETED": "COMPLETED", "CANCELLED": "CANCELLED", "RUNNING": None}.get(j.state, "FAILED")
        assert r["state"] == want
        assert r["user"].startswith("u") and r["user"] != j.user
    # one pseudonymous user per original user, the same for all their jobs
    users = {}
    for k, j in enumerate(orig, start=1):
        users.setdefault(j.user, set()).add(got[str(k)]["uid"])
    assert all(len(v) == 1 for v in users.values()) and len({min(v) for v in users.values()}) == 4
    back.close()


def test_swf_lines_are_18_numbers_whatever_the_names(store):
    _, data = _export(store, "swf")
    lines = data.decode().splitlines()
    header = [ln for ln in lines if ln.startswith(";")]
    body = [ln for ln in lines if not ln.startswith(";")]
    assert len(body) == 40 and any("anonymised" in ln and "nomade" in ln for ln in header)
    for ln in body:
        fields = ln.split(" ")
        assert len(fields) == 18
        assert all(f.lstrip("-").replace(".", "", 1).isdigit() for f in fields), ln


@pytest.mark.parametrize("fmt", ["swf", "parquet"])
def test_no_original_name_host_or_path_in_the_bytes(store, tmp_path, fmt):
    _, data = _export(store, fmt, tmp=tmp_path)
    for s in SENSITIVE + FRAGMENTS:
        assert s.encode("utf-8") not in data, (fmt, s)


def test_same_secret_same_pseudonyms_other_secret_others(store, tmp_path):
    a = _export(store, "swf")[1]
    b = _export(store, "swf")[1]
    c = _export(store, "swf", secret=b"z" * 40)[1]
    assert a == b
    body = lambda d: [ln for ln in d.decode().splitlines() if not ln.startswith(";")]  # noqa: E731
    ids = lambda d, i: {ln.split()[i] for ln in body(d)}                              # noqa: E731
    for field in (11, 12, 13):   # user, group, executable (job name)
        assert ids(a, field).isdisjoint(ids(c, field))
    p1, p2 = Pseudonyms(SECRET), Pseudonyms(b"z" * 40)
    assert p1.text("user", "alice") == Pseudonyms(SECRET).text("user", "alice")
    assert p1.text("user", "alice") != p2.text("user", "alice")
    assert p1.text("user", "alice") != p1.text("group", "alice")   # one domain per kind
    assert p1.text("user", None) is None and p1.number("user", None) == -1


def test_parquet_schema_values_and_metadata(store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    res, _ = _export(store, "parquet", tmp=tmp_path, batch=9, shift_times=True)
    table = pq.read_table(tmp_path / "export.parquet")
    assert [(f.name, str(f.type)) for f in table.schema] == [
        (n, {"float64": "double"}.get(t, t)) for n, t in PARQUET_FIELDS]
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["nomade.export"] == "anonymised" and "HMAC-SHA256" in meta["nomade.pseudonyms"]
    rows = table.to_pylist()
    assert len(rows) == 40 == res.jobs
    assert [r["job_number"] for r in rows] == list(range(1, 41))
    assert rows[0]["submit_time"] == 0.0 and rows[1]["submit_time"] == 100.0   # shifted
    assert rows[0]["nodes"].count(",") == 2 and rows[0]["nodes"].startswith("host_")
    assert {r["state"] for r in rows} >= {"COMPLETED", "OUT_OF_MEMORY"}
    cancelled = [r for r in rows if r["state"] == "CANCELLED"]
    assert cancelled and all(r["cancelled_by_owner"] == 1 for r in cancelled)
    assert rows[5]["max_rss_mb"] == 517.0 and rows[5]["partition"] == "gpu"
    assert len({r["user"] for r in rows}) == 4


def test_since_and_empty_export(store, tmp_path):
    res, _ = _export(store, "swf", since=T0 + 100 * 30)
    assert res.jobs == 10
    res, data = _export(store, "swf", since=T0 + 10 ** 9)
    assert res.jobs == 0 and data.startswith(b"; Version: 2.2")


def test_parquet_without_pyarrow_says_how_to_install(store, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(NomadeError) as exc:
        export_jobs(store, "parquet", SECRET, out=tmp_path / "x.parquet")
    assert "pyarrow" in str(exc.value) and "nomade[export]" in exc.value.hint
    assert not (tmp_path / "x.parquet").exists()


# ---------------------------------------------------------------- the secret file
def _secret_file(tmp_path, data=b"s" * 48, mode=0o600):
    p = tmp_path / "export.secret"
    p.write_bytes(data)
    p.chmod(mode)
    return p


@pytest.mark.parametrize("case, text", [
    ("missing", "no such secret file"),
    ("world", "readable by every user"),
    ("short", f"at least {MIN_SECRET_BYTES}"),
    ("dir", "not a regular file"),
    ("empty", "no secret file"),
])
def test_bad_secret_files_are_refused(tmp_path, case, text):
    path = {"missing": lambda: tmp_path / "nope",
            "world": lambda: _secret_file(tmp_path, mode=0o644),
            "short": lambda: _secret_file(tmp_path, b"short\n"),
            "dir": lambda: tmp_path,
            "empty": lambda: ""}[case]()
    with pytest.raises(ConfigError) as exc:
        read_secret(str(path))
    assert text in str(exc.value)


def test_secret_is_read_stripped(tmp_path):
    assert read_secret(str(_secret_file(tmp_path, b"x" * 40 + b"\n"))) == b"x" * 40


# ---------------------------------------------------------------- the command, admins only
@pytest.fixture
def data_dir(tmp_path):
    with open_store(tmp_path / "nomade.db") as s:
        upsert_jobs(s, _jobs(12), "test")
    return tmp_path


def _cli(args, capsys):
    code = run_cli(cli, args)
    return code, capsys.readouterr()


def test_cli_swf_to_stdout_and_parquet_to_file(data_dir, capsys, monkeypatch):
    monkeypatch.setattr(export_cmd, "current_caller", lambda: Caller(uid=0, gid=0))
    secret = _secret_file(data_dir)
    code, out = _cli(["--data-dir", str(data_dir), "export", "--anonymize", "--format", "swf",
                      "--secret-file", str(secret)], capsys)
    assert code == 0, out.err
    assert len([ln for ln in out.out.splitlines() if not ln.startswith(";")]) == 12
    assert "exported 12 jobs" in out.err and "alice" not in out.out
    pytest.importorskip("pyarrow")
    dest = data_dir / "share.parquet"
    code, out = _cli(["--data-dir", str(data_dir), "export", "--anonymize", "--format", "parquet",
                      "--out", str(dest), "--secret-file", str(secret), "--json"], capsys)
    assert code == 0, out.err
    assert '"jobs": 12' in out.out and dest.stat().st_mode & 0o777 == 0o600


def test_cli_secret_from_setting_and_one_line_refusals(data_dir, capsys, monkeypatch):
    monkeypatch.setattr(export_cmd, "current_caller", lambda: Caller(uid=0, gid=0))
    secret = _secret_file(data_dir, mode=0o604)
    monkeypatch.setenv("NOMADE_EXPORT_SECRET_FILE", str(secret))
    code, out = _cli(["--data-dir", str(data_dir), "export", "--anonymize", "--format", "swf"], capsys)
    assert code == 1 and out.out == ""
    assert out.err.count("\n") == 1 and "readable by every user" in out.err
    code, out = _cli(["--data-dir", str(data_dir), "export", "--format", "swf"], capsys)
    assert code != 0 and "--anonymize" in out.err


def test_non_admins_are_refused(data_dir, capsys, monkeypatch):
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(export_cmd, "current_caller", lambda: Caller(uid=nobody.pw_uid, gid=nobody.pw_gid))
    secret = _secret_file(data_dir)
    code, out = _cli(["--data-dir", str(data_dir), "export", "--anonymize", "--format", "swf",
                      "--secret-file", str(secret)], capsys)
    assert code == 1 and out.out == ""
    assert "only root and admins may export" in out.err
    with pytest.raises(AccessDenied):
        check_may_export(Caller(uid=nobody.pw_uid, gid=nobody.pw_gid), "nomade-admins")
    check_may_export(Caller(uid=0, gid=0), "nomade-admins")
