"""Before ``nomade install-slurm`` writes an interpreter into the hooks: can each account that runs
a part execute it and import nomade with it?

Prolog and Epilog run as root (slurmd), the MailProg as slurm.conf's SlurmUser (slurmctld), the
TaskProlog as the job's user and ``nomade-why`` as any user: those two are checked as ``nobody``.
A root-only venv (an interpreter under /root, a prefix of mode 0700) passes the first checks and
fails the last, and the start line then silently never appears; this finds it before anything
is written. Each check is one bounded subprocess through ``nomade.command.run_command``."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .command import run_command
from .errors import SlurmCommandError

UNPRIVILEGED = "nobody"
PROBE_TIMEOUT_S = 60.0
# the hook entries' own start-up (slurm_plugins/*: python -I, NOMADE_PYTHONPATH first on sys.path)
_PROBE = ("import importlib, sys; sys.path[:0] = [d for d in sys.argv[1].split(':') if d]; "
          "[importlib.import_module(m) for m in sys.argv[2:]]; import nomade; "
          "sys.stdout.write(nomade.__version__ + ' ' + nomade.__file__)")
_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Account:
    """One account that runs some of nomade's parts, and the account it is checked as."""

    parts: Tuple[str, ...]      # ("Prolog", "Epilog")
    runs_as: str                # in words: "root (slurmd)", "the job's user"
    check_as: str               # a user name
    modules: Tuple[str, ...]    # what those parts import first


@dataclass(frozen=True)
class ProbeResult:
    account: Account
    ok: Optional[bool]          # None: not checked (not root, or no runuser)
    detail: str                 # "nomade 0.1.0 from ...", or why not

    def line(self) -> str:
        state = {True: "ok", False: "FAILS", None: "not checked"}[self.ok]
        return (f"{', '.join(self.account.parts)}: run as {self.account.runs_as}, checked as "
                f"{self.account.check_as}: {state} ({self.detail})")


def accounts(slurm_user: str, mail: bool = True) -> List[Account]:
    """Who runs what, for a SlurmUser of ``slurm_user``."""
    root_parts, root_modules = ["Prolog", "Epilog"], ["nomade.hooks.prolog", "nomade.hooks.epilog"]
    out = []
    if mail and slurm_user == "root":
        root_parts.append("MailProg")
        root_modules.append("nomade.hooks.mailprog")
    out.append(Account(tuple(root_parts), "root (slurmd; slurmctld for MailProg)" if len(root_parts) > 2
                       else "root (slurmd)", "root", tuple(root_modules)))
    if mail and slurm_user != "root":
        out.append(Account(("MailProg",), f"SlurmUser {slurm_user} (slurmctld)", slurm_user,
                           ("nomade.hooks.mailprog",)))
    out.append(Account(("TaskProlog", "nomade-why"), "the job's user / any user", UNPRIVILEGED,
                       ("nomade.hooks.task_prolog", "nomade.cli.why_cmd")))
    return out


def _as_user(user: str, argv: List[str]) -> Optional[List[str]]:
    """``argv`` run as ``user``; None when this process cannot switch to that user."""
    me = os.geteuid()
    try:
        import pwd
        target = pwd.getpwnam(user).pw_uid
    except KeyError:
        return None
    if target == me:
        return argv
    runuser = shutil.which("runuser", path=_ENV["PATH"])
    if me != 0 or runuser is None:
        return None
    return [runuser, "-u", user, "--"] + argv


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _run_as(argv: List[str]) -> Tuple[bool, str]:
    """(ok, stdout or the last line that says why) of one probe command run through the door."""
    try:
        res = run_command(argv, PROBE_TIMEOUT_S, check=False, env=_ENV)
    except SlurmCommandError as exc:
        return False, str(exc)
    if res.rc != 0:
        return False, _last_line(res.stderr or res.stdout)
    return True, res.stdout


def probe(account: Account, python: str, pythonpath: str = "") -> ProbeResult:
    """Run the hook's interpreter as ``account.check_as`` and import what its parts import."""
    argv = _as_user(account.check_as, [python, "-I", "-c", _PROBE, pythonpath, *account.modules])
    if argv is None:
        why = (f"no user {account.check_as} on this host" if _no_user(account.check_as)
               else f"run install-slurm as root to check as {account.check_as}")
        return ProbeResult(account, None, why)
    ok, out = _run_as(argv)
    if not ok:
        return ProbeResult(account, False, out)
    detail = f"nomade {out.strip().replace(' ', ' from ', 1)}"
    if "nomade-why" in account.parts:
        why_script = Path(python).parent / "nomade-why"
        if why_script.is_file():
            return _probe_script(account, why_script, detail)
    return ProbeResult(account, True, detail)


def _probe_script(account: Account, script: Path, detail: str) -> ProbeResult:
    """``nomade-why --help`` as the user: the script users type, not only the interpreter."""
    argv = _as_user(account.check_as, [str(script), "--help"])
    if argv is None:
        return ProbeResult(account, True, detail)
    ok, out = _run_as(argv)
    if not ok:
        return ProbeResult(account, False, f"{script} --help: {out}")
    return ProbeResult(account, True, f"{detail}; {script} runs")


def _no_user(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        return True
    return False


def probe_all(python: str, pythonpath: str, slurm_user: str, mail: bool = True) -> List[ProbeResult]:
    return [probe(a, python, pythonpath) for a in accounts(slurm_user, mail)]


def refusal(results: List[ProbeResult], python: str) -> Optional[str]:
    """One line for the first failed check, or None when none failed."""
    for r in results:
        if r.ok is False:
            a = r.account
            return (f"{a.check_as} cannot run nomade with {python} ({r.detail}), and the "
                    f"{' and '.join(a.parts)} run as {a.runs_as}")
    return None
