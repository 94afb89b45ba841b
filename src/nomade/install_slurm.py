"""Install nomade's Slurm pieces: job_submit.lua, the hook entry scripts, their directories and a
marked block in slurm.conf. ``plan_install`` decides (pure: reads only), ``format_plan`` shows it
(``--dry-run``), ``apply_plan`` writes it, backing up every file it replaces.

Lines a site already sets (its own Prolog=, a JobSubmitPlugins list, ...) are never overwritten:
the plan lists them as conflicts with what to do by hand. See docs/slurm.md."""

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .config import Config
from .errors import ConfigError
from .hooks.harness import DEFAULT_RUNTIME_DIR

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


@dataclass
class InstallPlan:
    files: List[PlannedFile] = field(default_factory=list)
    dirs: List[Tuple[Path, int, str]] = field(default_factory=list)
    conf_path: Path = Path("/etc/slurm/slurm.conf")
    conf_lines: List[str] = field(default_factory=list)
    conflicts: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


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
    plan = InstallPlan(conf_path=conf_path)
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
        (cfg.data_dir, 0o700, "store, models, spool: readable only by the service user"),
        (cfg.spool_dir("hooks"), 0o700, "hook spool"),
        (Path(cfg.get("hooks.runtime_dir") or DEFAULT_RUNTIME_DIR), 0o711, "per-job risk notes"),
        (Path(cfg.get("privacy.socket")).parent, 0o755, "nomade-why socket"),
    ]
    bundle_model = Path(cfg.get("model.bundle") or cfg.registry_dir / "current") / "submit_model.lua"
    if bundle_model.is_file():
        plan.files.append(PlannedFile(model_path, bundle_model.read_text(), 0o644,
                                      f"submit-time model from {bundle_model}"))
    else:
        plan.notes.append(f"no bundle with submit_model.lua yet ({bundle_model}): job_submit.lua lets every "
                          f"job through silently until one is published to {model_path}.")
    if str(cfg.get("model.lua_path")) != str(model_path):
        plan.notes.append(f'set model.lua_path = "{model_path}" in {config_file}: then every promotion '
                          "and history refresh publishes the new submit_model.lua to job_submit.lua.")
    plan.notes.append("then: restart slurmctld (JobSubmitPlugins needs it) and `scontrol reconfigure`; "
                      "run `nomade serve-why` as the store's owner and `nomade ingest hooks` from a timer.")
    return plan


def format_plan(plan: InstallPlan) -> str:
    lines = ["Files:"]
    for f in plan.files:
        state = "replace (backup kept)" if f.path.exists() else "create"
        lines.append(f"  {f.path}  mode {f.mode:04o}  root  [{state}]  {f.why}")
    lines.append("Directories:")
    lines.extend(f"  {p}  mode {m:04o}  {why}" for p, m, why in plan.dirs)
    lines.append(f"slurm.conf ({plan.conf_path}) block:")
    lines.extend(f"  {ln}" for ln in [BEGIN] + plan.conf_lines + [END])
    for c in plan.conflicts:
        lines.append(f"Conflict: {c}")
    for n in plan.notes:
        lines.append(f"Note: {n}")
    return "\n".join(lines)


def _backup(path: Path, stamp: str) -> Optional[Path]:
    if not path.exists():
        return None
    dest = path.with_name(f"{path.name}.nomade-backup-{stamp}")
    shutil.copy2(path, dest)
    return dest


def _write(path: Path, content: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.nomade-tmp")
    with open(tmp, "w") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


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
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
            done.append(f"directory {path} ({mode:04o})")
        for f in plan.files:
            if f.path.exists() and f.path.read_text(errors="replace") == f.content:
                done.append(f"unchanged {f.path}")
                continue
            f.path.parent.mkdir(parents=True, exist_ok=True)
            b = _backup(f.path, stamp)
            _write(f.path, f.content, f.mode)
            done.append(f"wrote {f.path}" + (f" (backup {b})" if b else ""))
        old = plan.conf_path.read_text() if plan.conf_path.exists() else ""
        new = new_conf_text(old, plan.conf_lines)
        if new != old:
            b = _backup(plan.conf_path, stamp)
            _write(plan.conf_path, new, 0o644)
            done.append(f"wrote {plan.conf_path}" + (f" (backup {b})" if b else ""))
    except OSError as exc:
        raise ConfigError(f"install-slurm stopped at {exc.filename}: {exc.strerror}",
                          hint="run as root; what was written so far is listed by --dry-run") from None
    return done
