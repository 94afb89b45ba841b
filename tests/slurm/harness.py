"""Helpers for tests that run against the real cluster of tests/slurm/cluster.sh: bring it up (or
find it up), submit jobs as a given user, wait for them to end, read sacct, resume the node.

Test code, not library code: it calls subprocess directly and raises ``ClusterUnavailable`` (the
conftest turns it into a skip) or AssertionError/TimeoutError with what was seen."""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
TEST_USERS = ("alice", "bob", "carol")
ADMIN_GROUP = "nomade-admins"
SEP = "\x1f"  # sacct --delimiter for reads by the tests: job names may contain '|'
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING",
          "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}


class ClusterUnavailable(Exception):
    """The real cluster cannot be used here; the message says why (becomes the skip reason)."""


def sh(argv: Sequence[str], timeout: float = 60, check: bool = True, user: Optional[str] = None,
       cwd: str = "/tmp", input_text: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run argv (as ``user`` through runuser when given), text mode, with a timeout."""
    if user and user != "root":
        argv = ["runuser", "-u", user, "--"] + list(argv)
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its name, the node, and the users tests may submit as."""
    name: str
    node: str
    users: Sequence[str] = TEST_USERS
    admin_group: str = ADMIN_GROUP

    def up(self, env: Optional[Dict[str, str]] = None) -> None:
        """Re-run cluster.sh up (e.g. with NOMADE_SLURM_* knobs in ``env``)."""
        run_cluster_sh("up", env=env)

    def resume_node(self, timeout: float = 60) -> None:
        """Bring the node back to idle after a down/drain (NODE_FAIL tests, failing Epilogs)."""
        resume_node(self.node, timeout)


def run_cluster_sh(action: str, env: Optional[Dict[str, str]] = None, timeout: float = 900) -> str:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(["bash", str(CLUSTER_SH), action], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"cluster.sh {action} failed (rc {proc.returncode}): "
                                 f"{proc.stderr.strip()[-1500:]}")
    return proc.stderr


def ping() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        return sh(["scontrol", "ping"], timeout=15, check=False).returncode == 0 and \
            sh(["sacctmgr", "-n", "show", "cluster", "format=cluster"], timeout=15,
               check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_cluster() -> SlurmCluster:
    """Find the cluster up (NOMADE_SLURM_READY set by tests/run.sh) or bring it up as root."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the real-cluster tests need root (they start Slurm daemons and "
                                 "submit as test users): run `sudo bash tests/run.sh`")
    if not (os.environ.get("NOMADE_SLURM_READY") and ping()):
        if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
            raise ClusterUnavailable("Slurm is not installed and there is no apt-get to install it")
        run_cluster_sh("up")
        if not ping():
            raise ClusterUnavailable("cluster.sh up finished but `scontrol ping` fails; "
                                     "see /var/log/slurm/slurmctld.log")
    name = sh(["scontrol", "show", "config"], timeout=15).stdout
    cluster = next((ln.split("=", 1)[1].strip() for ln in name.splitlines()
                    if ln.startswith("ClusterName")), "lab")
    node = sh(["hostname", "-s"]).stdout.strip()
    return SlurmCluster(name=cluster, node=node)


def user_tmpdir(user: str, prefix: str = "nomade-test-") -> Path:
    """A fresh directory under /tmp owned by ``user`` (for job output files)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if user != "root":
        shutil.chown(path, user=user, group=user)
    path.chmod(0o755)
    return path


def submit(user: str, *sbatch_args: str, wrap: Optional[str] = None, script: Optional[str] = None,
           output_dir: Optional[Path] = None, requeue: bool = False) -> str:
    """sbatch as ``user`` (root or a test user) from /tmp; returns the job id (array: the base id).
    Output goes to ``output_dir`` (default: a fresh dir owned by the user) as %j.out / %A_%a.out."""
    out_dir = output_dir or user_tmpdir(user)
    argv = ["sbatch", "--parsable", "-D", "/tmp"]
    if not requeue:
        argv.append("--no-requeue")
    if not any(a.startswith(("-o", "--output")) for a in sbatch_args):
        pattern = "%A_%a.out" if any(a.startswith(("--array", "-a")) for a in sbatch_args) else "%j.out"
        argv += ["-o", str(out_dir / pattern)]
    argv += list(sbatch_args)
    if wrap is not None:
        argv += ["--wrap", wrap]
    proc = sh(argv, user=user, timeout=30, input_text=script)
    return proc.stdout.strip().splitlines()[-1].split(";")[0]


def squeue_state(job_id: str) -> str:
    out = sh(["squeue", "-h", "-j", job_id, "-o", "%T"], check=False, timeout=15).stdout.split()
    return out[0] if out else ""


def wait_state(job_id: str, states: Iterable[str], timeout: float = 60) -> str:
    """Wait until squeue shows the job in one of ``states`` (e.g. RUNNING)."""
    want = set(states)
    end = time.time() + timeout
    seen = ""
    while time.time() < end:
        seen = squeue_state(job_id)
        if seen in want:
            return seen
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not in {sorted(want)} after {timeout}s (last: {seen or 'gone'})")


def sacct_rows(job_ids: Iterable[str], fields: Sequence[str], steps: bool = True) -> List[Dict[str, str]]:
    """sacct rows (allocation + steps unless steps=False) for the jobs, as dicts of ``fields``."""
    ids = ",".join(job_ids)
    argv = ["sacct", "-a", "-n", "-P", f"--delimiter={SEP}", "-j", ids, "-o", ",".join(fields)]
    if not steps:
        argv.insert(1, "-X")
    out = sh(argv, timeout=30).stdout
    return [dict(zip(fields, ln.split(SEP))) for ln in out.splitlines() if ln.strip()]


def wait_done(job_ids: Sequence[str], timeout: float = 180) -> Dict[str, str]:
    """Wait until every job (and array task) has left the queue and sacct shows a final state
    for its allocation row. Returns {JobID: State} from sacct."""
    end = time.time() + timeout
    states: Dict[str, str] = {}
    while time.time() < end:
        rows = sacct_rows(job_ids, ["JobID", "State"], steps=False)
        states = {r["JobID"]: r["State"] for r in rows}
        queued = sh(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"], check=False,
                    timeout=15).stdout.split()
        if rows and not queued and not any(s.split()[0] in ACTIVE for s in states.values()):
            return states
        time.sleep(1)
    raise TimeoutError(f"jobs still active after {timeout}s: {states}")


def wait_accounting_settled(job_ids: Sequence[str], fields: Sequence[str], timeout: float = 30,
                            quiet_s: float = 3) -> None:
    """Wait (best effort) until sacct's rows for the jobs, steps included, have not changed for
    ``quiet_s``: slurmdbd takes the last step records and derived exit codes a few seconds after
    the jobs have ended, later on a busy machine."""
    end = time.time() + timeout
    last, since = None, time.time()
    while time.time() < end:
        now_rows = sacct_rows(job_ids, fields)
        if now_rows != last:
            last, since = now_rows, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(1)


def wait_all_accounting_settled(timeout: float = 60, quiet_s: float = 3) -> None:
    """Like wait_accounting_settled, for every job since midnight (what a live ingest reads)."""
    argv = ["sacct", "-a", "-n", "-P", "-S", time.strftime("%Y-%m-%dT00:00:00"), "-o",
            "JobID,State,ExitCode,DerivedExitCode,MaxRSS,TotalCPU,End,UID"]
    end = time.time() + timeout
    last, since = None, time.time()
    while time.time() < end:
        now_out = sh(argv, timeout=30).stdout
        if now_out != last:
            last, since = now_out, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(1)


def wait_field(job_id: str, field: str, value: str, timeout: float = 60) -> None:
    """Wait until sacct's allocation row of ``job_id`` shows ``field`` = ``value``."""
    end = time.time() + timeout
    seen = None
    while time.time() < end:
        rows = sacct_rows([job_id], [field], steps=False)
        seen = rows[0][field] if rows else None
        if seen == value:
            return
        time.sleep(1)
    raise TimeoutError(f"sacct still shows {field}={seen!r} for job {job_id} after {timeout}s")


def wait_queue_empty(timeout: float = 120) -> None:
    """Wait (best effort) until no job is running, e.g. before taking the node down."""
    end = time.time() + timeout
    while time.time() < end:
        if not sh(["squeue", "-h", "-t", "R,CG", "-o", "%i"], check=False, timeout=15).stdout.strip():
            return
        time.sleep(1)


def node_state(node: str) -> str:
    return sh(["sinfo", "-h", "-n", node, "-o", "%T"], timeout=15).stdout.strip()


def resume_node(node: str, timeout: float = 60) -> None:
    """Undrain / un-down the node and wait until it accepts jobs again."""
    st = node_state(node)
    if any(w in st for w in ("down", "drain", "fail")):
        sh(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
    end = time.time() + timeout
    while time.time() < end:
        st = node_state(node).rstrip("*")
        if st in ("idle", "mixed", "allocated", "completing"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"node {node} still {st!r} {timeout}s after resume")


def user_uid(user: str) -> int:
    import pwd
    return pwd.getpwnam(user).pw_uid
