"""Shared set-up for the real-cluster tests of nomade's Slurm integration (job_submit.lua, hooks,
MailProg, nomade-why). Installs nomade's pieces with ``install_slurm`` into /opt/nomade-test,
points tests/slurm/cluster.sh's knobs at them, and offers helpers to submit as the test users.

Hooks run under the system /usr/bin/python3 with PYTHONPATH = a copy of click + src/ + a stub
start-time scorer, so the TaskProlog and nomade-why work as unprivileged users."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
BASE = Path("/opt/nomade-test")
ETC = BASE / "etc"
CONF = ETC / "nomade.toml"
MODEL = ETC / "submit_model.lua"
DATA = Path("/var/lib/nomade-test")
LOG = Path("/var/log/nomade-test/hooks.log")
RUN = Path("/run/nomade-test")
SOCK = RUN / "why.sock"
WORK = Path("/tmp/nomade-it")
SYS_PY = "/usr/bin/python3"
NOMADE = [sys.executable, "-c", "from nomade.cli.main import main; main()"]

STUB_SCORER = '''
def score(req):
    name = req.get("name") or ""
    if name.startswith("risky"):
        return {"risk": 0.91, "reasons": ["jobs named like this failed before"],
                "model_version": "stub-it", "suggestion": "--time=00:10:00"}
    return {"risk": 0.04, "reasons": [], "model_version": "stub-it"}
'''


def pythonpath() -> str:
    return f"{BASE / 'pylib'}:{ROOT / 'src'}"


def write_config(smtp_port: int, extra: str = "") -> None:
    CONF.write_text(f'''data_dir = "{DATA}"
[hooks]
scorer = "nomade_stub_scorer:score"
runtime_dir = "{RUN / 'jobs'}"
log_file = "{LOG}"
timeout_s = 2.0
[mail]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
from = "slurm@test"
[privacy]
socket = "{SOCK}"
admin_group = "nomade-admins"
{extra}''')
    CONF.chmod(0o644)


def install(smtp_port: int) -> Dict[str, str]:
    """Write everything; returns the cluster.sh knobs."""
    from nomade.config import load_config
    from nomade.install_slurm import apply_plan, plan_install
    for d in (BASE, ETC, BASE / "pylib", WORK):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    WORK.chmod(0o1777)
    import click
    dest = BASE / "pylib" / "click"
    if not dest.exists():
        shutil.copytree(Path(click.__file__).parent, dest)
    (BASE / "pylib" / "nomade_stub_scorer.py").write_text(STUB_SCORER)
    subprocess.run(["chmod", "-R", "a+rX", str(BASE)], check=True)
    write_config(smtp_port)
    shutil.copy(ROOT / "lua" / "test_model.lua", MODEL)
    MODEL.chmod(0o644)
    cfg = load_config(str(CONF), environ={})
    plan = plan_install(cfg, conf_path=ETC / "slurm.conf.scratch", lib_dir=BASE / "lib", model_path=MODEL,
                        python=SYS_PY, pythonpath=pythonpath(), config_file=CONF, log_file=LOG)
    apply_plan(plan)
    return {
        "NOMADE_SLURM_JOB_SUBMIT_LUA": str(ETC / "job_submit.lua"),
        "NOMADE_SLURM_PROLOG": str(BASE / "lib" / "prolog"),
        "NOMADE_SLURM_EPILOG": str(BASE / "lib" / "epilog"),
        "NOMADE_SLURM_TASKPROLOG": str(BASE / "lib" / "task_prolog"),
        "NOMADE_SLURM_MAILPROG": str(BASE / "lib" / "mailprog"),
    }


def cluster_up(knobs: Optional[Dict[str, str]] = None) -> None:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("NOMADE_SLURM_"):
            del env[k]
    env.update(knobs or {})
    r = subprocess.run([str(CLUSTER_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"cluster.sh up failed: {r.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_user(user: str, argv: List[str], env: Optional[Dict[str, str]] = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    pre = ["runuser", "-u", user, "--", "env"] + [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(pre + argv, capture_output=True, text=True, timeout=timeout, cwd=str(WORK))


def sbatch(user: str, *args: str) -> subprocess.CompletedProcess:
    return as_user(user, ["sbatch", "--parsable", "-o", str(WORK / "%j.out"), *args])


def job_id_of(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def wait_ended(job_ids: List[str], timeout: float = 180) -> Dict[str, str]:
    """Wait until squeue no longer lists the jobs; returns sacct's state per job."""
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True,
                             text=True).stdout.split()
        if not set(out) & set(job_ids):
            break
        time.sleep(1)
    states: Dict[str, str] = {}
    end2 = time.time() + 60
    while time.time() < end2:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                             capture_output=True, text=True).stdout
        states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        if all(j in states and not states[j].startswith(("RUNNING", "PENDING", "COMPLETING")) for j in job_ids):
            return states
        time.sleep(1)
    return states


def nomade(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, NOMADE_CONFIG=str(CONF), PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run(NOMADE + list(args), capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def nomade_why_as(user: str, job_id: str) -> subprocess.CompletedProcess:
    return as_user(user, [SYS_PY, "-c", "from nomade.cli.why_cmd import main; main()", "--json", job_id],
                   env={"PYTHONPATH": pythonpath(), "NOMADE_CONFIG": str(CONF)})


def node_states() -> str:
    return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()


def slurmctld_alive() -> bool:
    return subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode == 0


def hook_log() -> str:
    return LOG.read_text() if LOG.exists() else ""


def ctld_log_since(offset: int) -> str:
    with open("/var/log/slurm/slurmctld.log", "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", "replace")


def ctld_log_size() -> int:
    return os.path.getsize("/var/log/slurm/slurmctld.log")


def reset_state() -> None:
    for p in (DATA, RUN):
        shutil.rmtree(p, ignore_errors=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    if LOG.exists():
        LOG.unlink()


def load_json(text: str):
    return json.loads(text)
