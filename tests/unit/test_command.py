"""The one subprocess door, nomade.command.run_command, and the CLI's error translation."""

import os
import sys
import time

import click
import pytest

from nomade.cli.main import run_cli
from nomade.command import run_command
from nomade.errors import SlurmCommandError, StoreError


def test_output_and_return_code():
    res = run_command([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                      timeout=30)
    assert (res.rc, res.stdout, res.stderr) == (0, "out\n", "err\n")


def test_input_text_and_env():
    res = run_command([sys.executable, "-c", "import os,sys; print(sys.stdin.read() + os.environ['X'])"],
                      timeout=30, input_text="in-", env={"X": "env", "PATH": os.environ.get("PATH", "")})
    assert res.stdout == "in-env\n"


def test_non_zero_exit_raises_with_rc_and_stderr():
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('first\\nsacct: error: boom\\n'); sys.exit(3)"]
    with pytest.raises(SlurmCommandError) as exc:
        run_command(argv, timeout=30)
    e = exc.value
    assert e.rc == 3 and "boom" in e.stderr and e.cmd == argv
    assert str(e).endswith("exited with 3: sacct: error: boom")


def test_non_zero_exit_without_check_returns():
    assert run_command(["sh", "-c", "exit 4"], timeout=30, check=False).rc == 4


def test_missing_binary_raises():
    with pytest.raises(SlurmCommandError) as exc:
        run_command(["/nonexistent/sacct", "-X"], timeout=30)
    assert exc.value.rc is None
    assert "/nonexistent/sacct could not run" in str(exc.value)


def test_argv_is_not_a_shell():
    res = run_command(["echo", "$HOME; rm -rf /"], timeout=30)
    assert res.stdout == "$HOME; rm -rf /\n"


@pytest.mark.parametrize("argv, timeout", [([], 5), (["true"], 0), (["true"], None)])
def test_bad_arguments(argv, timeout):
    with pytest.raises(ValueError):
        run_command(argv, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    # the shell starts a background grandchild and a foreground one, writes their pids, then waits
    script = f"sleep 100 & echo $! > {pids}; sleep 100 & echo $! >> {pids}; wait"
    started = time.monotonic()
    # 2 s: long enough for the shell to start both children even on a busy 2-core machine
    with pytest.raises(SlurmCommandError, match="timed out after 2 s") as exc:
        run_command(["sh", "-c", script], timeout=2)
    assert time.monotonic() - started < 15
    assert exc.value.rc is None
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children)


def test_cli_translates_errors_to_one_line(capsys):
    @click.command()
    @click.argument("kind")
    def boom(kind):
        if kind == "store":
            raise StoreError("the store is locked", hint="retry later")
        if kind == "slurm":
            run_command(["sh", "-c", "echo 'sacct: error: slurmdbd down' >&2; exit 1"], timeout=30)
        raise RuntimeError("unexpected\nsecond line")

    assert run_cli(boom, ["store"]) == 1
    err = capsys.readouterr().err
    assert err == "nomade: error: the store is locked (retry later)\n"

    assert run_cli(boom, ["slurm"]) == 1
    err = capsys.readouterr().err
    assert err == "nomade: error: sh exited with 1: sacct: error: slurmdbd down\n"

    assert run_cli(boom, ["other"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("nomade: internal error: RuntimeError: unexpected second line")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--debug" in err


def test_cli_debug_shows_traceback():
    @click.command()
    @click.option("--debug", is_flag=True)
    def boom(debug):
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        run_cli(boom, ["--debug"])
