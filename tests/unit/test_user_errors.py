"""What a user who is not root sees when nomade's store is not theirs: one line that says what to do
(ask through the nomade-why service, or the administrators), never "run `nomade db migrate`" and
never an internal error. In process (nomade.cli.context) and, as the user ``nobody``, through a
real interpreter that user can run."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nomade.cli import context
from nomade.cli.context import ask_hint, store_refusal_for_user
from nomade.cli.main import cli, permission_hint, run_cli

ROOT = Path(__file__).resolve().parents[2]
ASK = ("ask about your own jobs through the nomade-why service: `nomade-why JOBID`; for anything else, "
       "or if that service is down, ask your cluster's administrators (group nomade-admins)")


def test_ask_hint_names_the_service_and_whom_to_ask():
    assert ask_hint("nomade-admins") == ASK
    assert ask_hint("").endswith("ask your cluster's administrators")


def test_missing_store_for_a_reader_is_not_a_migrate_hint(tmp_path):
    err = store_refusal_for_user(tmp_path / "nomade.db", "nomade-admins", readonly=True)
    assert str(err) == f"no nomade store at {tmp_path / 'nomade.db'}" and err.hint == ASK
    # a command that writes may create a store of the user's own
    assert store_refusal_for_user(tmp_path / "nomade.db", "nomade-admins", readonly=False) is None


def test_unreadable_store(tmp_path, monkeypatch):
    db = tmp_path / "nomade.db"
    db.write_text("")
    monkeypatch.setattr(context.os, "access", lambda path, mode: False)
    err = store_refusal_for_user(db, "nomade-admins", readonly=True)
    assert str(err) == f"nomade's job data ({db}) is kept by the nomade service and is not readable by you"
    assert err.hint == ASK
    err = store_refusal_for_user(db, "nomade-admins", readonly=False)
    assert "not writable by you" in str(err)
    assert err.hint.startswith("this command is for administrators: run it as root, the store's owner; ")


def test_non_root_cli_gets_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(context.os, "getuid", lambda: 4242)
    monkeypatch.setenv("NOMADE_CONFIG", "")
    for args in (["report", "5"], ["jobs"]):
        assert run_cli(cli, ["--data-dir", str(tmp_path / "none"), *args]) == 1
        err = capsys.readouterr().err
        assert err == f"nomade: error: no nomade store at {tmp_path / 'none' / 'nomade.db'} ({ASK})\n"
        assert "db migrate" not in err


def test_permission_error_is_not_an_internal_error(monkeypatch, capsys):
    import click

    @click.command()
    def reads():
        raise PermissionError(13, "Permission denied", "/var/lib/nomade/models/current")

    monkeypatch.setattr("nomade.cli.main.os.getuid", lambda: 4242)
    assert run_cli(reads, []) == 1
    err = capsys.readouterr().err
    assert err == f"nomade: error: permission denied: /var/lib/nomade/models/current ({permission_hint()})\n"
    assert "nomade-why" in err and "internal error" not in err


# ---------------------------------------------------------------- really as nobody

def _nobody():
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return None
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@pytest.fixture(scope="module")
def nobody_python():
    """A venv from the system Python that ``nobody`` can run (click, numpy; nomade from the
    source tree), under a world-traversable temporary directory; removed afterwards."""
    system = shutil.which("python3", path="/usr/bin")
    if _nobody() is None or system is None:
        pytest.skip("needs root, runuser, user nobody and /usr/bin/python3")
    top = Path(tempfile.mkdtemp(prefix="nomade-nobody-", dir="/tmp"))
    try:
        top.chmod(0o755)
        r = subprocess.run([system, "-m", "venv", str(top / "venv")], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.skip(f"no venv from {system}: {r.stderr.strip()[-200:]}")
        r = subprocess.run([str(top / "venv" / "bin" / "pip"), "install", "-q", "click>=8", "numpy",
                            "tomli; python_version < '3.11'"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"cannot install click/numpy: {r.stderr.strip()[-200:]}")
        # readable and runnable by nobody whatever the umask (a test may narrow the process's)
        subprocess.run(["chmod", "-R", "go+rX", str(top)], check=True, timeout=60)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _as_nobody(top: Path, *args: str) -> subprocess.CompletedProcess:
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); sys.argv[0] = 'nomade'; "
            "from nomade.cli.main import main; main()")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    return subprocess.run([shutil.which("runuser"), "-u", "nobody", "--", str(top / "venv" / "bin" / "python"), "-I", "-c", code,
                           *args], capture_output=True, text=True, timeout=120, env=env, cwd="/")


@pytest.mark.slow
def test_as_nobody_without_access_to_the_store(nobody_python):
    top = nobody_python
    private = top / "data"
    private.mkdir(mode=0o700)
    (private / "nomade.db").write_text("")
    (private / "nomade.db").chmod(0o600)
    for args, line in [
        # a user's report goes through the why-service (the store is private): here it is not running
        (["report", "5"], "nomade: error: the nomade-why service is not running at /run/nomade/why.sock "
                          "(ask your administrator to start `nomade serve-why`)"),
        (["jobs"], f"nomade: error: nomade's job data ({private / 'nomade.db'}) is kept by the nomade "
                   f"service and is not readable by you ({ASK})"),
        (["ingest", "hooks"], f"nomade: error: nomade's job data ({private / 'nomade.db'}) is kept by the "
                              "nomade service and is not readable by you (this command is for administrators: "
                              f"run it as root, the store's owner; {ASK})"),
    ]:
        r = _as_nobody(top, "--data-dir", str(private), *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.splitlines() == [line], (args, r.stderr)
    # no store at all (nobody's default data dir): not "run `nomade db migrate`"
    r = _as_nobody(top, "jobs")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"nomade: error: no nomade store at /nonexistent/.local/share/nomade/nomade.db ({ASK})"], r.stderr
