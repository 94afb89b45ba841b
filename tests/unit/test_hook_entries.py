"""The shell entries in slurm_plugins/ (what slurm.conf points at): bounded even when their Python
cannot be killed, isolated from the caller's Python environment, silent for tasks other than 0."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

UNKILLABLE_C = r"""
#include <unistd.h>
int main(void) { if (setuid(0) != 0) return 3; sleep(30); return 0; }
"""


def _entry(dirpath: Path, hook: str, python: str, hard_s: int = 5) -> Path:
    text = (ROOT / "slurm_plugins" / hook).read_text()
    text = text.replace("NOMADE_PYTHON=/usr/bin/python3", f"NOMADE_PYTHON={python}")
    text = text.replace("NOMADE_HOOK_LOG=/var/log/nomade/hooks.log", f"NOMADE_HOOK_LOG={dirpath}/h.log")
    text = text.replace("NOMADE_HARD_TIMEOUT_S=5", f"NOMADE_HARD_TIMEOUT_S={hard_s}")
    path = dirpath / hook
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def public_dir():
    """A directory user `nobody` can traverse (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="nomade-entry-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("gcc") or not shutil.which("setpriv"),
                    reason="needs root, gcc and setpriv to make a child the entry cannot kill")
@pytest.mark.parametrize("hook", ["prolog", "epilog"])
def test_entry_returns_within_its_budget_when_python_cannot_be_killed(public_dir, hook):
    """A Python stuck on a hung filesystem cannot be killed. Stand-in: the entry runs as `nobody`
    and its 'python' is a setuid-root program that drops into uid 0 entirely, so the entry's
    TERM and KILL fail (EPERM) exactly as they would not take effect on a process in D state.
    The entry must return at ~budget + 1 s and say that it did not wait. (`timeout -k` returned
    too, only because its last SIGKILL goes to its own process group and so kills `timeout`
    itself: it logged 'exited 137' with a 'Killed' line and no word of the orphan.)"""
    src = public_dir / "stuck.c"
    src.write_text(UNKILLABLE_C)
    stuck = public_dir / "stuck"
    subprocess.run(["gcc", "-o", str(stuck), str(src)], check=True, timeout=60)
    os.chmod(stuck, 0o4755)
    entry = _entry(public_dir, hook, str(stuck), hard_s=1)
    (public_dir / "h.log").touch()
    os.chmod(public_dir / "h.log", 0o666)
    t0 = time.monotonic()
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(entry)],
                           env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "77"},
                           capture_output=True, timeout=25)
        took = time.monotonic() - t0
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(stuck)], timeout=10)
    if b"Permission denied" in r.stderr or "exited 3" in (public_dir / "h.log").read_text():
        pytest.skip("setuid programs do not run here (nosuid /tmp)")
    assert r.returncode == 0
    assert took < 5, f"the {hook} entry waited {took:.1f} s for a child it could not kill"
    assert "job=77: python exited 124" in (public_dir / "h.log").read_text()


def test_entry_runs_python_isolated(tmp_path):
    """PYTHONPATH/PYTHONSTARTUP-style variables of the caller never reach the hook's Python: a
    `sitecustomize` planted on PYTHONPATH is not imported (-I); NOMADE_PYTHONPATH still works."""
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').write('x')\n")
    entry = _entry(tmp_path, "epilog", sys.executable)
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": "5", "PYTHONPATH": str(evil),
           "NOMADE_DATA_DIR": str(tmp_path / "data"), "SLURM_JOB_UID": "0", "SLURM_JOB_USER": "root"}
    r = subprocess.run([str(entry)], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0
    assert not (tmp_path / "pwned").exists()
    assert "nomade-epilog job=5" in (tmp_path / "h.log").read_text() or \
        any((tmp_path / "data" / "spool" / "hooks").glob("*.json"))


def test_task_prolog_entry_starts_no_python_for_other_tasks(tmp_path):
    """Only task 0 prints, so only task 0 pays for a Python start (srun -n 256 starts 256 tasks)."""
    fake = tmp_path / "fakepython"
    fake.write_text(f"#!/bin/sh\necho started >> {tmp_path}/starts\necho 'print hello'\n")
    fake.chmod(0o755)
    entry = _entry(tmp_path, "task_prolog", str(fake))
    for procid, expect in (("3", b""), ("0", b"print hello\n")):
        r = subprocess.run([str(entry)], env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "5",
                                              "SLURM_PROCID": procid}, capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stdout == expect
    assert (tmp_path / "starts").read_text() == "started\n"


def test_task_prolog_entry_prints_nothing_from_a_child_past_its_budget(tmp_path):
    """A child past the budget is not waited for and its late output never reaches slurmstepd."""
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\ntrap '' TERM\nsleep 3\necho 'print late'\n")
    fake.chmod(0o755)
    entry = _entry(tmp_path, "task_prolog", str(fake), hard_s=1)
    t0 = time.monotonic()
    r = subprocess.run([str(entry)], env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "5"},
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b"" and time.monotonic() - t0 < 2.9


def test_mailprog_entry_hands_slurms_message_to_python(tmp_path):
    """The MailProg's Python gets Slurm's message on its stdin and its arguments as given
    (an asynchronous command in sh gets /dev/null as stdin unless told otherwise)."""
    fake = tmp_path / "fakepython"
    fake.write_text(f"#!/bin/sh\ncat > {tmp_path}/body\nprintf '%s\\n' \"$@\" > {tmp_path}/args\n")
    fake.chmod(0o755)
    entry = _entry(tmp_path, "mailprog", str(fake))
    body = "SLURM Job_id=7 Name=x Ended, Run time 00:00:01, COMPLETED, ExitCode 0\nsecond line | $HOME `x`\n"
    r = subprocess.run([str(entry), "-s", "Slurm Job_id=7 Ended", "alice@example.org"], input=body.encode(),
                       env={"PATH": os.environ["PATH"]}, capture_output=True, timeout=60)
    assert r.returncode == 0
    assert (tmp_path / "body").read_text() == body
    assert (tmp_path / "args").read_text().splitlines()[-3:] == ["-s", "Slurm Job_id=7 Ended",
                                                                  "alice@example.org"]
