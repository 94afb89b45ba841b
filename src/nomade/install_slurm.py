"""Install nomade's Slurm pieces: job_submit.lua, the hook entry scripts, their directories, a
marked block in slurm.conf and the systemd units (``nomade.install_units``). ``plan_install``
decides (pure: reads only), ``format_plan`` shows it (``--dry-run``), ``apply_plan`` writes it,
backing up every file it replaces. ``nomade.install_probe`` checks the interpreter first.

Lines a site already sets (its own Prolog=, a JobSubmitPlugins list, ...) are never overwritten:
the plan lists them as conflicts with what to do by hand. See docs/slurm.md."""

import os
import pwd
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .config import Config
from .errors import ConfigError
from .hooks.harness import DEFAULT_RUNTIME_DIR
from .install_units import Unit, enable_command
from .private_files import write_atomic

BEGIN = "# BEGIN nomade (written by `nomade install-slurm`; delete this block to uninstall)"
END = "# END nomade"
HOOKS = ("prolog", "epilog", "task_prolog", "mailprog")
HOOK_KEYS = {"prolog": "Prolog", "epilog": "Epilog", "task_prolog": "TaskProlog", "mailprog": "MailProg"}
_KEY = re.compile(r"^\s*([A-Za-z]+)\s*=\s*(.*?)\s*(#.*)?$")


@dataclass
class PlannedFile:
    path: Path
    content: str
    mode: int
    why: str
    owner: str = ""  # a user name: the file is given to that user (and its group); "" = the installer


@dataclass
class InstallPlan:
    files: List[PlannedFile] = field(default_factory=list)
    dirs: List[Tuple[Path, int, str]] = field(default_factory=list)
    conf_path: Path = Path("/etc/slurm/slurm.conf")
    conf_lines: List[str] = field(default_factory=list)
    conflicts: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    python: str = ""                                      # the interpreter written into the hooks
    checks: List[str] = field(default_factory=list)       # install_probe results, one line each


def source_dir() -> Path:
    """Where lua/ and slurm_plugins/ are: the source checkout this nomade runs from, else
    <prefix>/share/nomade where `pip install` puts them (pyproject's data-files)."""
    here = Path(__file__).resolve().parent
    for base in (here.parents[1], Path(sys.prefix) / "share" / "nomade"):
        if (base / "lua" / "job_submit.lua").is_file() and (base / "slurm_plugins").is_dir():
            return base
    raise ConfigError("cannot find nomade's lua/job_submit.lua and slurm_plugins/",
                      hint="run install-slurm from a nomade source checkout or pass --source DIR")


def read_conf(path: Path) -> Dict[str, str]:
    """slurm.conf keys outside nomade's block (lower-cased) -> value."""
    out: Dict[str, str] = {}
    if not path.is_file():
        return out
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith(BEGIN[:14]):
            inside = True
        elif line.startswith(END):
            inside = False
        elif not inside:
            m = _KEY.match(line)
            if m and not line.lstrip().startswith("#"):
                out[m.group(1).lower()] = m.group(2)
    return out


MODEL_MODE = 0o640


def slurm_user(conf: Dict[str, str]) -> str:
    """The user slurmctld runs as: slurm.conf's SlurmUser (Slurm's default is root)."""
    return conf.get("slurmuser", "").strip() or "root"


def _fill(text: str, values: Dict[str, str]) -> str:
    for key, value in values.items():
        text, n = re.subn(rf"^{key}=.*$", f"{key}={value}", text, count=1, flags=re.M)
    return text


def plan_install(cfg: Config, *, conf_path: Path = Path("/etc/slurm/slurm.conf"),
                 lib_dir: Path = Path("/etc/slurm/nomade"), model_path: Path = Path("/etc/nomade/submit_model.lua"),
                 python: Optional[str] = None, config_file: Path = Path("/etc/nomade/nomade.toml"),
                 log_file: Path = Path("/var/log/nomade/hooks.log"), source: Optional[Path] = None,
                 mail: bool = True, pythonpath: str = "") -> InstallPlan:
    src = source or source_dir()
    python = python or sys.executable
    plan = InstallPlan(conf_path=conf_path, python=python)
    existing = read_conf(conf_path)
    lua = (src / "lua" / "job_submit.lua").read_text()
    lua = re.sub(r'local MODEL_PATH = "[^"]*"', f'local MODEL_PATH = "{model_path}"', lua, count=1)
    job_submit = conf_path.parent / "job_submit.lua"
    ours = job_submit.is_file() and "nomade job_submit.lua" in job_submit.read_text(errors="replace")
    plugins = [p.strip() for p in existing.get("jobsubmitplugins", "").split(",") if p.strip()]
    if job_submit.is_file() and not ours:
        plan.conflicts.append(f"{job_submit} is the site's own script: not replaced. Merge nomade's "
                              f"slurm_job_submit from {src / 'lua' / 'job_submit.lua'} into it by hand.")
    else:
        plan.files.append(PlannedFile(job_submit, lua, 0o644, "job_submit.lua: risk message at sbatch"))
        if plugins and "lua" not in plugins:
            plan.conflicts.append(f"slurm.conf sets JobSubmitPlugins={','.join(plugins)}: add ',lua' to it.")
        elif not plugins:
            plan.conf_lines.append("JobSubmitPlugins=lua")
    fill = {"NOMADE_PYTHON": python, "NOMADE_CONF": str(config_file), "NOMADE_HOOK_LOG": str(log_file),
            "NOMADE_PYTHONPATH": pythonpath}
    for hook in HOOKS:
        if hook == "mailprog" and not mail:
            continue
        text = _fill((src / "slurm_plugins" / hook).read_text(), fill)
        plan.files.append(PlannedFile(lib_dir / hook, text, 0o755, f"{HOOK_KEYS[hook]} entry (always exits 0)"))
        key = HOOK_KEYS[hook]
        if key.lower() in existing and existing[key.lower()] != str(lib_dir / hook):
            plan.conflicts.append(f"slurm.conf sets {key}={existing[key.lower()]}: not replaced. Call "
                                  f"{lib_dir / hook} from it (it always exits 0), or use a directory "
                                  f"glob ({key}=/etc/slurm/{hook}.d/*).")
        else:
            plan.conf_lines.append(f"{key}={lib_dir / hook}")
    plan.dirs = [
        (lib_dir, 0o755, "hook entry scripts"),
        (model_path.parent, 0o755, "submit_model.lua for job_submit.lua"),
        (log_file.parent, 0o750, "hook log"),
        (cfg.data_dir, 0o700, "store, models, spool: readable only by root, the store's owner"),
        (cfg.spool_dir("hooks"), 0o700, "hook spool"),
        (Path(cfg.get("hooks.runtime_dir") or DEFAULT_RUNTIME_DIR), 0o711, "per-job risk notes"),
        (Path(cfg.get("privacy.socket")).parent, 0o755, "nomade-why socket"),
    ]
    bundle_model = Path(cfg.get("model.bundle") or cfg.registry_dir / "current") / "submit_model.lua"
    if bundle_model.is_file():
        # per-user history (hashed): readable by slurmctld's user only
        plan.files.append(PlannedFile(model_path, bundle_model.read_text(), MODEL_MODE,
                                      f"submit-time model from {bundle_model}",
                                      owner=slurm_user(existing)))
    else:
        plan.notes.append(f"no bundle with submit_model.lua yet ({bundle_model}): job_submit.lua lets every "
                          f"job through silently until one is published to {model_path}.")
        if slurm_user(existing) != "root":
            plan.notes.append(f"SlurmUser is {slurm_user(existing)}: after the first `nomade train --publish`, run "
                              f"install-slurm again, so that {model_path} belongs to {slurm_user(existing)} "
                              "(a first publication creates it 0600 for root; later ones keep its owner).")
    if str(cfg.get("model.lua_path")) != str(model_path):
        plan.notes.append(f'set model.lua_path = "{model_path}" in {config_file}: then every promotion '
                          "and history refresh publishes the new submit_model.lua to job_submit.lua.")
    plan.notes.append("then: restart slurmctld (JobSubmitPlugins needs it) and `scontrol reconfigure`; "
                      "start the why-service and the timers (docs/deployment.md).")
    return plan


def add_units(plan: InstallPlan, units: Sequence[Unit], unit_dir: Path) -> None:
    """Put ``units`` (install_units.plan_units) into ``plan``: files 0644 in ``unit_dir``."""
    if not units:
        return
    plan.dirs.append((unit_dir, 0o755, "systemd units"))
    for u in units:
        plan.files.append(PlannedFile(unit_dir / u.name, u.text, 0o644, f"systemd unit ({u.host})"))
    enable = enable_command([u.name for u in units])
    if enable:
        plan.notes.append(f"on this host (the store host): {enable}")
    if any(u.host == "compute nodes" for u in units):
        plan.notes.append("nomade-record.service belongs on the compute nodes: install it there with "
                          "`nomade install-slurm --print-units --unit nomade-record.service`.")


def format_plan(plan: InstallPlan) -> str:
    lines = []
    if plan.python:
        lines.append(f"Interpreter written into the hooks: {plan.python}")
    if plan.checks:
        lines.append("Accounts that run it:")
        lines.extend(f"  {c}" for c in plan.checks)
    lines.append("Files:")
    for f in plan.files:
        state = "replace (backup kept)" if f.path.exists() else "create"
        lines.append(f"  {f.path}  mode {f.mode:04o}  {f.owner or 'root'}  [{state}]  {f.why}")
    lines.append("Directories (created when missing; an existing one is left as it is):")
    lines.extend(f"  {p}  mode {m:04o}  {why}" for p, m, why in plan.dirs)
    lines.append(f"slurm.conf ({plan.conf_path}) block:")
    lines.extend(f"  {ln}" for ln in [BEGIN] + plan.conf_lines + [END])
    for c in plan.conflicts:
        lines.append(f"Conflict: {c}")
    for n in plan.notes:
        lines.append(f"Note: {n}")
    return "\n".join(lines)


def _owner_ids(owner: str) -> Optional[Tuple[int, int]]:
    if not owner:
        return None
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        raise ConfigError(f"slurm.conf: SlurmUser={owner} is not a user on this host",
                          hint="run install-slurm on the slurmctld host") from None
    return pw.pw_uid, pw.pw_gid


def _backup(path: Path, stamp: str, mode: int) -> Optional[Path]:
    """A copy of ``path``, no more readable than the original nor than the planned ``mode``
    (a backup of an old world-readable model must not keep leaking it)."""
    if not path.exists():
        return None
    dest = path.with_name(f"{path.name}.nomade-backup-{stamp}")
    write_atomic(dest, path.read_bytes(), mode=path.stat().st_mode & mode & 0o777)
    return dest


def _write(path: Path, content: str, mode: int, ids: Optional[Tuple[int, int]] = None) -> None:
    write_atomic(path, content.encode(), mode=mode, owner=ids)


def _same_file(path: Path, content: str, mode: int, ids: Optional[Tuple[int, int]]) -> bool:
    if not path.is_file() or path.read_text(errors="replace") != content:
        return False
    st = path.stat()
    return st.st_mode & 0o7777 == mode and (ids is None or (st.st_uid, st.st_gid) == ids)


def _kept_meta(path: Path, default_mode: int) -> Tuple[int, Optional[Tuple[int, int]]]:
    """The mode and owner of a site file nomade edits (slurm.conf): kept as they are."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return default_mode, None
    return st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def _make_dir(path: Path, mode: int) -> str:
    """Create ``path`` (and missing parents, 0755) with its documented mode; an existing
    directory is left exactly as it is, mode and owner: install-slurm did not create it."""
    if path.is_dir():
        have = path.stat().st_mode & 0o7777
        note = "" if have == mode else f"; nomade would create it {mode:04o}"
        return f"kept existing directory {path} ({have:04o}{note})"
    missing = []
    p = path
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    if not missing:
        raise ConfigError(f"install-slurm: {path} exists and is not a directory",
                          hint="move it away or choose another path")
    for d in reversed(missing):
        m = mode if d == path else 0o755
        os.mkdir(d, m)
        os.chmod(d, m)  # one it has just created, still empty: the umask may have narrowed it
    return f"directory {path} ({mode:04o})"


def new_conf_text(old: str, conf_lines: List[str]) -> str:
    """``old`` with nomade's block replaced (or appended)."""
    kept, inside = [], False
    for line in old.splitlines():
        if line.startswith(BEGIN[:14]):
            inside = True
        elif line.startswith(END) and inside:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept + ([""] if kept else []) + [BEGIN] + conf_lines + [END]) + "\n"


def apply_plan(plan: InstallPlan, stamp: Optional[str] = None) -> List[str]:
    """Write everything; returns one line per action (backups included)."""
    stamp = stamp or time.strftime("%Y%m%d%H%M%S")
    done: List[str] = []
    try:
        for path, mode, _ in plan.dirs:
            done.append(_make_dir(path, mode))
        for f in plan.files:
            ids = _owner_ids(f.owner)
            if _same_file(f.path, f.content, f.mode, ids):
                done.append(f"unchanged {f.path}")
                continue
            if not f.path.parent.is_dir():
                done.append(_make_dir(f.path.parent, 0o755))
            b = _backup(f.path, stamp, f.mode)
            _write(f.path, f.content, f.mode, ids)
            done.append(f"wrote {f.path}" + (f" (backup {b})" if b else ""))
        old = plan.conf_path.read_text() if plan.conf_path.exists() else ""
        new = new_conf_text(old, plan.conf_lines)
        if new != old:
            mode, ids = _kept_meta(plan.conf_path, 0o644)
            b = _backup(plan.conf_path, stamp, mode)
            _write(plan.conf_path, new, mode, ids)
            done.append(f"wrote {plan.conf_path}" + (f" (backup {b})" if b else ""))
    except OSError as exc:
        raise ConfigError(f"install-slurm stopped at {exc.filename}: {exc.strerror}",
                          hint="run as root; what was written so far is listed by --dry-run") from None
    return done
