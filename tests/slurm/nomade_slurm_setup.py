"""Shared set-up for the real-cluster tests of nomade's Slurm integration (job_submit.lua, hooks,
MailProg, nomade-why). Trains a real model bundle on a synthetic history of the test users
(``site_history``) and publishes it - the ONNX ensemble for the Prolog, submit_model.lua for
job_submit.lua - then installs nomade's pieces with ``install_slurm`` into /opt/nomade-test,
points tests/slurm/cluster.sh's knobs at them, and offers helpers to submit as the test users.

Hooks run under the system /usr/bin/python3 (Debian's 3.11) with PYTHONPATH = pylib + src/:
pylib holds a copy of click and links to the test venv's numpy and onnxruntime (the slim
runtime: the same cp311 wheels), so the TaskProlog and nomade-why work as unprivileged users and
the Prolog scores with onnxruntime. ``without_onnxruntime()`` takes the link away for the
"onnxruntime missing" fault."""

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

RUNTIME_PACKAGES = ("numpy", "numpy.libs", "onnxruntime")
HISTORY_USERS = ("alice", "bob", "carol") + tuple(f"hist{i:02d}" for i in range(12))


def site_history(now: float, n: int = 3000, seed: int = 5):
    """JobRecords of a past month on cluster 'lab' (all ended an hour before ``now``): jobs named
    risky-* fail 90 % of the time; bob's longsim jobs run ~3h10m and time out when asked for
    30 minutes; plain and sim-* jobs mostly succeed. Job ids h<N> never collide with Slurm's."""
    import numpy as np
    from nomade.jobrecord import JobRecord

    rng = np.random.default_rng(seed)
    node = socket.gethostname().split(".")[0]
    subs = np.sort(rng.uniform(now - 30 * 86400, now - 86400, n))
    out = []
    for i, t in enumerate(subs):
        user = HISTORY_USERS[int(rng.integers(len(HISTORY_USERS)))]
        kind = rng.choice(["risky", "plain", "sim", "longsim"], p=[0.25, 0.35, 0.3, 0.1])
        cpus = int(rng.choice([1, 2, 4]))
        tl = 3600
        if kind == "risky":
            name, failed, run = f"risky-{int(rng.integers(1, 4))}", rng.random() < 0.9, 20.0
        elif kind == "longsim":
            user = "bob"
            tl = int(rng.choice([1800, 4 * 3600]))
            name, failed, run = "longsim", tl < 3 * 3600, min(tl, 11400.0 + rng.normal(0, 300))
        else:
            name = "plain" if kind == "plain" else f"sim-{int(rng.integers(1, 6))}"
            failed, run = rng.random() < (0.03 if kind == "plain" else 0.15), float(rng.uniform(5, 600))
        state = ("TIMEOUT" if kind == "longsim" else "FAILED") if failed else "COMPLETED"
        start = float(t + rng.uniform(0, 300))
        out.append(JobRecord(cluster="lab", job_id=f"h{i}", job_id_raw=10_000_000 + i, name=name,
                             user=user, uid=None, submit_time=float(t), req_cpus=cpus, req_nodes=1,
                             req_mem_mb=500.0, req_mem_per_cpu=1, timelimit_s=tl, state=state,
                             state_raw=state, is_final=1, exit_code=3 if state == "FAILED" else 0,
                             start_time=start, end_time=min(start + run, now - 3600),
                             elapsed_s=int(run), alloc_cpus=cpus, node_list=node))
    return out


def train_site_bundle() -> str:
    """Train on ``site_history`` into DATA's registry and promote it by hand (trained without an
    evaluation, which the publish gate of `train --publish` refuses): the bundle becomes current
    and its submit_model.lua is written to MODEL (model.lua_path). Returns the version."""
    from nomade.config import load_config
    from nomade.scoring.registry import promote
    from nomade.store.db import open_store
    from nomade.store.jobs import upsert_jobs
    from nomade.train.pipeline import train_bundle

    cfg = load_config(str(CONF), environ={}, overrides={"train.folds": 0})
    with open_store(cfg.store_path) as store:
        upsert_jobs(store, site_history(time.time()), "site-history")
        res = train_bundle(store, cfg, cfg.registry_dir, rounds=60)
        promote(store, cfg.registry_dir, res.version, str(MODEL))
    return res.version


def _link_runtime_packages(pylib: Path) -> None:
    import numpy
    site = Path(numpy.__file__).resolve().parents[1]
    for name in RUNTIME_PACKAGES:
        link = pylib / name
        if not link.exists() and (site / name).exists():
            link.symlink_to(site / name)


class without_onnxruntime:
    """Context manager: the hooks' Python cannot import onnxruntime while inside."""

    def __enter__(self):
        self.link = BASE / "pylib" / "onnxruntime"
        self.target = os.readlink(self.link) if self.link.is_symlink() else None
        if self.target:
            self.link.unlink()
        return self

    def __exit__(self, *exc):
        if self.target and not self.link.exists():
            self.link.symlink_to(self.target)


def pythonpath() -> str:
    return f"{BASE / 'pylib'}:{ROOT / 'src'}"


def write_config(smtp_port: int, extra: str = "") -> None:
    CONF.write_text(f'''data_dir = "{DATA}"
[model]
lua_path = "{MODEL}"
# a quarter of this site's history are risky-* jobs (90 % of them fail) and a twentieth bob's
# longsim jobs asking 30 minutes (all time out): the policy aims at 80 % of the budget (the 20 %
# margin for drift), so 0.4 lets about 32 % of submissions be warned, both kinds (the default
# budget, 10 %, would warn none of them)
alert_budget = 0.4
[hooks]
runtime_dir = "{RUN / 'jobs'}"
log_file = "{LOG}"
timeout_s = 3.0
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
    _link_runtime_packages(BASE / "pylib")
    stale = BASE / "pylib" / "nomade_stub_scorer.py"   # from test runs before the real bundle
    if stale.exists():
        stale.unlink()
    subprocess.run(["chmod", "-R", "a+rX", str(BASE)], check=True)
    write_config(smtp_port)
    train_site_bundle()
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


def node_report() -> str:
    """Node state with its reason and the queue with pending reasons, for assertion messages."""
    def out(argv: List[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
    return (f"nodes: {out(['sinfo', '-h', '-o', '%N %T %E'])}; "
            f"queue: {out(['squeue', '-h', '-o', '%i %T %r']).replace(chr(10), ', ')}")


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
