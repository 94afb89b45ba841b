"""The why-service against hostile clients and identities (issue item 6): a bounded worker pool,
a per-uid limit, a total deadline per request, size and depth checks before JSON decoding, clean
error lines, unsigned peer credentials, admin by the uid's groups (not the peer's egid), and a
client that retries a busy service a bounded number of times."""

import grp
import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from nomade.errors import AccessDenied, ConfigError, NomadeError
from nomade.jobrecord import JobRecord
from nomade.report import JobNotFound
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs
from nomade.whyservice import access
from nomade.whyservice.access import Caller, check_access, is_admin, parse_peercred
from nomade.whyservice.client import ask
from nomade.whyservice.pool import PoolLimits, WorkerPool
from nomade.whyservice.protocol import BadRequest, decode_request, nesting_depth
from nomade.whyservice.server import WhyServer

ME = os.getuid()
SMALL = PoolLimits(workers=2, backlog=2, per_uid=50, request_timeout_s=0.5)
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                             reason="needs root (to act as another uid) and /usr/bin/python3")


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "nomade.db"
    with open_store(path) as store:
        upsert_jobs(store, [JobRecord(cluster="lab", job_id="10", user="alice", uid=ME, name="sim",
                                      state="COMPLETED", is_final=1, elapsed_s=60, timelimit_s=600,
                                      req_cpus=1, alloc_cpus=1, partition="debug", exit_code=0,
                                      submit_time=1.0)], "test")
    return path


@pytest.fixture
def serve(store_path):
    """serve(limits, admin_group) -> socket path of a running server (stopped after the test)."""
    started = []

    def start(limits=SMALL, admin_group="no-such-group-xyz"):
        sock_dir = Path(tempfile.mkdtemp(prefix="nomade-why-"))  # traversable by other uids
        os.chmod(sock_dir, 0o755)
        server = WhyServer(sock_dir / "why.sock", store_path, admin_group, limits=limits)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append((server, sock_dir))
        return server.socket_path

    yield start
    for server, sock_dir in started:
        server.shutdown()
        server.server_close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def connect(sock: Path, timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    return s


def raw_exchange(sock: Path, data: bytes, timeout: float = 5.0) -> dict:
    """Send ``data`` as a hostile client would and return the one answer line."""
    s = connect(sock, timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all; the answer is queued
        return json.loads(read_all(s))
    finally:
        s.close()


def read_all(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def as_uid(uid: int, gid: int, code: str, *args: str, timeout: float = 30) -> str:
    """Run stdlib-only ``code`` as uid/gid with no supplementary groups; its stdout."""
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    out = subprocess.run(["/usr/bin/python3", "-c", code, *args], capture_output=True, text=True,
                         timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin")}, preexec_fn=drop)
    return out.stdout + out.stderr


ASK_RAW = ("import socket, sys, time\n"
           "t = time.monotonic(); s = socket.socket(socket.AF_UNIX); s.settimeout(10)\n"
           "s.connect(sys.argv[1]); s.sendall(('{\"op\": \"why\", \"job_id\": \"%s\"}\\n' % sys.argv[2]).encode())\n"
           "b = b''\n"
           "while not b.endswith(b'\\n'):\n"
           "    c = s.recv(65536)\n"
           "    if not c: break\n"
           "    b += c\n"
           "print('%.3f' % (time.monotonic() - t), b.decode().strip())\n")


# ------------------------------------------------------------------ request checks (no socket)

def test_nested_json_is_refused_before_decoding():
    with pytest.raises(BadRequest, match="nested") as exc:
        decode_request(b"[" * 3000)
    assert exc.value.kind == "bad_request"
    assert nesting_depth(b'{"a": "[[[[[[[[[[", "b": "\\"[[[["}') == 1  # brackets in strings do not count


@pytest.mark.parametrize("line, words", [
    (b"[" * 100000, "too large"),
    (b"\xff\xfe\x00{}", "not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'"just a string"', "not a JSON object"),
])
def test_bad_request_lines(line, words):
    with pytest.raises(BadRequest, match=words):
        decode_request(line)


# ------------------------------------------------------------------ identity

def test_peercred_is_unsigned():
    caller = parse_peercred(struct.pack("3I", 4242, 4294967294, 4294967294))
    assert (caller.pid, caller.uid, caller.gid) == (4242, 4294967294, 4294967294)
    with pytest.raises(AccessDenied):  # not the owner of a job stored with uid -2
        check_access(caller, {"job_id": "1", "uid": -2, "user": "x"}, "no-such-group-xyz")
    check_access(caller, {"job_id": "1", "uid": 4294967294, "user": "x"}, "no-such-group-xyz")


@pytest.fixture
def fake_userdb(monkeypatch):
    """carol (uid 5000, primary group 5000) is in `carol-admins` (4242) as a supplementary member;
    dave (uid 5001, primary group 5001) is in nothing else; `admins` is gid 4242."""
    users = {5000: ("carol", 5000), 5001: ("dave", 5001)}
    members = {"carol": [4242]}

    def getpwuid(uid):
        if uid not in users:
            raise KeyError(uid)
        name, gid = users[uid]
        return pwd.struct_passwd((name, "x", uid, gid, "", "/", "/bin/sh"))

    def getgrnam(name):
        if name != "admins":
            raise KeyError(name)
        return grp.struct_group(("admins", "x", 4242, ["carol"]))

    monkeypatch.setattr(access.pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(access.grp, "getgrnam", getgrnam)
    monkeypatch.setattr(access.os, "getgrouplist", lambda name, base: [base] + members.get(name, []))


def test_admin_by_supplementary_group(fake_userdb):
    assert is_admin(Caller(uid=5000, gid=5000), "admins")
    assert not is_admin(Caller(uid=5001, gid=5001), "admins")
    assert is_admin(Caller(uid=0, gid=12345), "admins")  # root stays admin


def test_admin_not_by_peer_egid(fake_userdb):
    """dave runs a setgid-admins program: the peer's gid is 4242, his groups are not."""
    assert not is_admin(Caller(uid=5001, gid=4242), "admins")
    with pytest.raises(AccessDenied):
        check_access(Caller(uid=5001, gid=4242), {"job_id": "1", "uid": 5000}, "admins")


def test_uid_without_passwd_entry_has_no_groups(fake_userdb):
    assert Caller(uid=7777, gid=4242).groups() == frozenset()
    assert not is_admin(Caller(uid=7777, gid=4242), "admins")


@AS_ROOT
def test_setgid_peer_is_not_admin_over_the_socket(serve):
    """A real peer as `nobody` whose gid is the admin group (what a setgid program gives) asks
    about root's job: refused."""
    admin = grp.getgrnam("adm")
    sock = serve(admin_group="adm")
    nobody = pwd.getpwnam("nobody")
    out = as_uid(nobody.pw_uid, admin.gr_gid, ASK_RAW, str(sock), "10")
    assert '"kind": "denied"' in out, out


@AS_ROOT
def test_supplementary_admin_over_the_socket(serve, monkeypatch):
    """The same peer, with `adm` in nobody's group list (user database), sees root's job."""
    admin = grp.getgrnam("adm")
    nobody = pwd.getpwnam("nobody")
    real = os.getgrouplist
    monkeypatch.setattr(access.os, "getgrouplist",
                        lambda name, base: real(name, base) + ([admin.gr_gid] if name == "nobody" else []))
    sock = serve(admin_group="adm")
    out = as_uid(nobody.pw_uid, nobody.pw_gid, ASK_RAW, str(sock), "10")
    assert '"ok": true' in out, out


@AS_ROOT
def test_high_uid_peer_over_the_socket(serve, store_path):
    """A real peer with uid 4294967294 (read as -2 by a signed unpack) is the owner of its job."""
    high = 4294967294
    with open_store(store_path) as store:
        upsert_jobs(store, [JobRecord(cluster="lab", job_id="11", user="ghost", uid=high, name="x",
                                      state="COMPLETED", is_final=1, partition="debug", req_cpus=1,
                                      submit_time=2.0)], "test")
    sock = serve()
    try:
        out = as_uid(high, high, ASK_RAW, str(sock), "11")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run as uid {high} here: {exc}")
    assert '"ok": true' in out, out
    assert '"kind": "denied"' in as_uid(high, high, ASK_RAW, str(sock), "10")


# ------------------------------------------------------------------ hostile clients, real socket

@pytest.mark.parametrize("data, words", [
    (b"[" * 100000 + b"\n", "too large"),
    (b"[" * 3000 + b"\n", "nested"),
    (b"x" * 5000, "too large"),  # no newline at all
    (b"\xff\xfe\x80\n", "not UTF-8"),
    (b'{"job_id": ["10"]}\n', "expected op 'why'"),
    (b'{"job_id": true}\n', "expected op 'why'"),
    (b'{"op": "drop", "job_id": "10"}\n', "expected op 'why'"),
    (b"\n", "empty"),
])
def test_hostile_lines_get_one_clean_error_and_the_server_lives(serve, data, words):
    sock = serve()
    resp = raw_exchange(sock, data)
    assert resp["ok"] is False and resp["kind"] == "bad_request" and words in resp["error"], resp
    assert ask(sock, "10")["job_id"] == "10"  # still alive and answering


def test_trickling_client_is_cut_at_the_deadline(serve):
    sock = serve(PoolLimits(workers=2, backlog=2, per_uid=50, request_timeout_s=0.5))
    s = connect(sock)
    t0 = time.monotonic()
    try:
        for byte in b'{"op": "why", "job_id": "10"}':
            s.sendall(bytes([byte]))  # one byte every 50 ms: each recv is quick, the whole is not
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        pass  # cut
    resp = json.loads(read_all(s))
    s.close()
    assert resp["kind"] == "timeout", resp
    assert time.monotonic() - t0 < 2.0


def test_idle_connections_do_not_deny_a_normal_client(serve):
    """20 connections that never send: 2 hold the workers, 2 wait, the rest hear "busy" at once;
    a normal client (with its bounded retries) still gets its answer within a bound."""
    sock = serve(PoolLimits(workers=2, backlog=2, per_uid=50, request_timeout_s=0.5))
    idle = [connect(sock) for _ in range(20)]
    try:
        t0 = time.monotonic()
        assert ask(sock, "10", timeout=5.0, retry_delays=(0.2, 0.3, 0.5, 0.5, 0.5))["job_id"] == "10"
        assert time.monotonic() - t0 < 4.0
        busy = 0
        for s in idle:
            resp = json.loads(read_all(s))
            busy += resp["kind"] == "busy"
            assert resp["kind"] in ("busy", "timeout"), resp
        assert busy >= 14
    finally:
        for s in idle:
            s.close()


def test_one_uid_holds_at_most_per_uid_connections(serve):
    sock = serve(PoolLimits(workers=4, backlog=8, per_uid=2, request_timeout_s=1.0))
    held = [connect(sock) for _ in range(2)]
    time.sleep(0.1)
    try:
        resp = raw_exchange(sock, b'{"op": "why", "job_id": "10"}\n')
        assert resp["kind"] == "busy" and f"uid {ME}" in resp["error"], resp
    finally:
        for s in held:
            s.close()


@AS_ROOT
def test_other_users_are_served_while_one_uid_floods(serve):
    sock = serve(PoolLimits(workers=3, backlog=4, per_uid=2, request_timeout_s=5.0))
    flood = [connect(sock) for _ in range(30)]  # root holds 2 workers for 5 s, the rest refused
    try:
        nobody = pwd.getpwnam("nobody")
        out = as_uid(nobody.pw_uid, nobody.pw_gid, ASK_RAW, str(sock), "999")
        elapsed, line = out.split(" ", 1)
        assert json.loads(line)["kind"] == "not_found", out
        assert float(elapsed) < 1.0
    finally:
        for s in flood:
            s.close()


def test_worker_survives_a_failing_request(serve, monkeypatch):
    from nomade.whyservice import server as server_mod
    calls = []
    real = server_mod.answer

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real(*args, **kw)
    monkeypatch.setattr(server_mod, "answer", flaky)
    sock = serve(PoolLimits(workers=1, backlog=2, per_uid=50, request_timeout_s=0.5))
    assert ask(sock, "10", timeout=5.0, retry_delays=(0.05,))["job_id"] == "10"  # retried once


# ------------------------------------------------------------------ the pool alone

def test_pool_admission_per_uid_and_backlog():
    release = threading.Event()
    pool = WorkerPool(lambda conn, caller: release.wait(5), PoolLimits(workers=1, backlog=2, per_uid=2))
    pool.start()
    pairs = [socket.socketpair() for _ in range(6)]
    try:
        assert pool.submit(pairs[0][0], Caller(1, 1)) is None
        time.sleep(0.05)  # taken by the worker
        assert pool.submit(pairs[1][0], Caller(1, 1)) is None  # waits
        assert "uid 1" in pool.submit(pairs[2][0], Caller(1, 1))
        assert pool.submit(pairs[3][0], Caller(2, 2)) is None  # waits: backlog now full
        assert "busy" in pool.submit(pairs[4][0], Caller(3, 3))
        release.set()
    finally:
        release.set()
        pool.stop()
        for a, b in pairs:
            a.close()
            b.close()
    assert pool.held_by(1) == 0 and pool.held_by(2) == 0


# ------------------------------------------------------------------ the client

def test_client_retries_eagain_then_says_busy(tmp_path):
    path = tmp_path / "full.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)  # never accepted: the backlog fills, connect gets EAGAIN
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(path))
            except BlockingIOError:
                pass
            fillers.append(s)
        t0 = time.monotonic()
        with pytest.raises(NomadeError, match="is busy") as exc:
            ask(path, "10", timeout=3.0, retry_delays=(0.05, 0.05))
        assert time.monotonic() - t0 < 1.5
        assert "\n" not in str(exc.value) and exc.value.hint
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_client_refused_is_retried_then_explained(tmp_path):
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: ECONNREFUSED
    with pytest.raises(NomadeError, match="not accepting connections"):
        ask(path, "10", timeout=3.0, retry_delays=(0.05,))


def test_client_gives_up_on_a_busy_answer(serve):
    sock = serve(PoolLimits(workers=1, backlog=0, per_uid=1, request_timeout_s=2.0))
    held = connect(sock)  # takes uid's only slot
    time.sleep(0.1)
    try:
        t0 = time.monotonic()
        with pytest.raises(NomadeError, match="busy"):
            ask(sock, "10", timeout=3.0, retry_delays=(0.05, 0.05))
        assert time.monotonic() - t0 < 1.5
    finally:
        held.close()


def test_client_still_maps_not_found(serve):
    with pytest.raises(JobNotFound):
        ask(serve(), "999")


# ------------------------------------------------------------------ serve-why's setting

def test_serve_why_takes_max_per_uid_from_the_settings(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    from nomade.whyservice import server as server_mod
    seen = {}

    class FakeServer:
        def __init__(self, *args, **kwargs):
            seen["limits"] = args[-1]

        def serve_forever(self):
            pass

        def server_close(self):
            pass
    monkeypatch.setattr(server_mod, "WhyServer", FakeServer)
    monkeypatch.setenv("NOMADE_PRIVACY_MAX_PER_UID", "3")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "serve-why", "--socket", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert seen["limits"].per_uid == 3
    monkeypatch.setenv("NOMADE_PRIVACY_MAX_PER_UID", "0")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "serve-why", "--socket", str(tmp_path / "s")])
    assert isinstance(res.exception, ConfigError) and "privacy.max_per_uid = 0" in str(res.exception)


# ------------------------------------------------------------------ the job report through the service

ASK_REPORT = ASK_RAW.replace('"op": "why"', '"op": "report"')


def test_report_through_the_service_for_the_owner(serve):
    """`nomade report` as a user asks the service (op "report"): the owner gets the report text."""
    sock = serve()
    ans = ask(sock, "10", op="report")
    assert "10" in ans["text"] and ans["reports"][0]["job_id"] == "10" and ans["summary"]["jobs"] == 1


@AS_ROOT
def test_report_through_the_service_is_refused_to_another_user(serve):
    assert '"op": "report"' in ASK_REPORT
    sock = serve()
    nobody = pwd.getpwnam("nobody")
    out = as_uid(nobody.pw_uid, nobody.pw_gid, ASK_REPORT, str(sock), "10")
    assert '"kind": "denied"' in out and "sim" not in out, out
