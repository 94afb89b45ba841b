"""A throwaway PostgreSQL server for the tests (Debian's postgresql-15 binaries).

``pg_server`` (session): ``initdb`` in a temporary directory as an unprivileged user (``postgres``
when the tests run as root: initdb refuses root), a server listening only on a Unix socket in
that directory (``listen_addresses = ''``), stopped at the end of the session. It yields a
``PgServer``; ``new_database()`` creates a fresh database and returns its URL (one per test that
wants an empty store). Skipped, with the reason, where the binaries are missing, except under
CI (``CI=true``), where that is a failure.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import pytest

PG_BIN = Path(os.environ.get("NOMADE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PgUnavailable(Exception):
    pass


@dataclass
class PgServer:
    root: Path
    user: Optional[str]          # the unprivileged user running the server (None: ourselves)
    proc: Optional[subprocess.Popen] = None
    created: List[str] = field(default_factory=list)

    @property
    def socket_dir(self) -> str:
        return str(self.root / "sock")

    def url(self, dbname: str = "postgres") -> str:
        role = self.user or pwd.getpwuid(os.getuid()).pw_name
        return f"postgresql:///{dbname}?host={self.socket_dir}&user={role}"

    def new_database(self, prefix: str = "nomade_test") -> str:
        """A new empty database (UTF-8, C collation); its URL."""
        name = f"{prefix}_{len(self.created)}_{os.getpid()}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\' '
                  f"LC_COLLATE 'C' LC_CTYPE 'C'")
        self.created.append(name)
        return self.url(name)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        import psycopg
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql)
            return "" if cur.description is None else repr(cur.fetchall())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()           # SIGTERM: smart shutdown; SIGINT would be fast
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user(user: Optional[str]):
    if user is None:
        return None
    pw = pwd.getpwnam(user)

    def demote() -> None:  # pragma: no cover - runs in the child
        os.setgid(pw.pw_gid)
        os.setgroups([])
        os.setuid(pw.pw_uid)
    return demote


def start_server(settings: Optional[dict] = None) -> PgServer:
    """initdb and start a server in a new temporary directory; raises PgUnavailable.
    ``settings``: postgresql.conf values over the tests' small defaults (the benchmarks')."""
    for tool in ("initdb", "postgres"):
        if not (PG_BIN / tool).exists():
            raise PgUnavailable(f"{PG_BIN / tool} not found (install Debian's postgresql-15)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PgUnavailable("psycopg is not installed (pip install '.[postgres]')") from None
    user = None
    if os.getuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise PgUnavailable("running as root and there is no 'postgres' user for initdb") from None
    root = Path(tempfile.mkdtemp(prefix="nomade-pg-"))
    os.chmod(root, 0o755)
    server = PgServer(root, user)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(sock, pw.pw_uid, pw.pw_gid)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    try:
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-E", "UTF8",
                        "--locale=C", "-U", user or pwd.getpwuid(os.getuid()).pw_name, "--no-sync"],
                       check=True, capture_output=True, timeout=120, preexec_fn=_as_user(user))
        conf = {"listen_addresses": "", "fsync": "off", "synchronous_commit": "off",
                "full_page_writes": "off", "max_connections": "50", "shared_buffers": "64MB"}
        conf.update(settings or {})
        argv = [str(PG_BIN / "postgres"), "-D", str(data), "-k", str(sock)]
        for key, value in conf.items():
            argv += ["-c", f"{key}={value}"]
        log = open(root / "server.log", "wb")
        server.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_as_user(user))
        log.close()
        _wait_ready(server)
    except (OSError, subprocess.SubprocessError, PgUnavailable) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        server.stop()
        raise PgUnavailable(f"cannot start PostgreSQL: {exc} {detail.decode(errors='replace')[-300:]}") from None
    return server


def _wait_ready(server: PgServer, timeout_s: float = 60) -> None:
    import psycopg
    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            tail = (server.root / "server.log").read_text(errors="replace")[-500:]
            raise PgUnavailable(f"postgres exited: {tail}")
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise PgUnavailable("postgres did not accept connections within 60 s") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = start_server()
    except PgUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests must run under CI: {exc}")
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request, tmp_path):
    """Where a test's store is, once per engine: a SQLite file in ``tmp_path``, then a fresh
    PostgreSQL database's URL (``open_store`` takes either)."""
    if request.param == "sqlite":
        return tmp_path / "data" / "nomade.db"
    return request.getfixturevalue("pg_url")
