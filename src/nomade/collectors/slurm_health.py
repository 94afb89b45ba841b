"""slurm_health: slurmctld's own load from ``sdiag`` (server threads, agent queue, RPC counts per
message type and per user, so nomade measures what it and others cost) and whether slurmctld,
slurmdbd and munge answer (``slurm.up``, label daemon; 1 up, 0 down), each with a short timeout;
and fairshare per account and user (``sshare``, every ``fairshare_interval_s``).

It runs every 120 s, 60 s out of step with the nodes collector (``phase_s``), so that a cycle asks
slurmctld at most three things: squeue (1 RPC) with sinfo (2), or squeue with sdiag and sshare.

sdiag counters are cumulative since slurmctld started or since the last ``sdiag -r``; rates come
from the analysis, which handles resets."""

import re
import shutil
from typing import Dict, List, Optional, Tuple

from ..errors import SlurmCommandError
from .base import CollectContext, Collector, Metric, register
from .external import clean_label, run_tool, setting
from .queue import fairshare_metrics

SDIAG_ARGV = ("sdiag",)
PING_ARGV = ("scontrol", "ping")
DBD_ARGV = ("sacctmgr", "-n", "show", "cluster", "format=cluster")
SCALARS = {                       # sdiag line label -> metric
    "Server thread count": "slurm.server_threads",
    "Agent queue size": "slurm.agent_queue",
    "Agent count": "slurm.agent_count",
    "DBD Agent queue size": "slurm.dbd_agent_queue",
    "Jobs pending": "slurm.jobs_pending",
    "Jobs running": "slurm.jobs_running",
}
_SCALAR = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s+(\d+)\s*$")
_RPC = re.compile(r"^\s*(\S+)\s+\(\s*(\d+)\)\s+count:(\d+)\s+ave_time:(\d+)\s+total_time:(\d+)")
_SECTIONS = (("by message type", "type"), ("by user", "user"))


def parse_sdiag(text: str) -> Dict[str, object]:
    """{"scalars": {metric: value}, "type": [(name, count, total_us)], "user": [...]} from sdiag's
    text. Values past 2^63 (a corrupt counter) are left out."""
    scalars: Dict[str, float] = {}
    rpcs: Dict[str, List[Tuple[str, int, int]]] = {"type": [], "user": []}
    section: Optional[str] = None
    main_sched = False
    for line in text.splitlines():
        if line.startswith("Remote Procedure Call statistics"):
            section = next((key for tail, key in _SECTIONS if line.rstrip().endswith(tail)), None)
            continue
        if line and not line[0].isspace():          # a new block starts at column 0
            section = None
            main_sched = line.startswith("Main schedule statistics")
        rpc = _RPC.match(line)
        if section and rpc:
            count, total = int(rpc.group(3)), int(rpc.group(5))
            if count < 2 ** 63 and total < 2 ** 63:
                rpcs[section].append((clean_label(rpc.group(1), 64), count, total))
            continue
        scalar = _SCALAR.match(line.strip())
        if scalar and int(scalar.group(2)) < 2 ** 63:
            label = scalar.group(1).strip()
            if label in SCALARS and not line[0:1].isspace():
                scalars[SCALARS[label]] = float(scalar.group(2))
            elif main_sched and label in ("Last cycle", "Mean cycle", "Max cycle"):
                scalars["slurm.sched_" + label.split()[0].lower() + "_cycle_us"] = float(scalar.group(2))
    return {"scalars": scalars, **rpcs}


def sdiag_metrics(parsed: Dict[str, object]) -> List[Metric]:
    out = [Metric.of(name, value) for name, value in sorted(parsed["scalars"].items())]  # type: ignore[union-attr]
    for name, count, total_us in parsed["type"]:  # type: ignore[union-attr]
        out.append(Metric.of("slurm.rpc_count", count, type=name))
        out.append(Metric.of("slurm.rpc_time_s", total_us / 1e6, type=name))
    for name, count, total_us in parsed["user"]:  # type: ignore[union-attr]
        out.append(Metric.of("slurm.rpc_user_count", count, user=name))
        out.append(Metric.of("slurm.rpc_user_time_s", total_us / 1e6, user=name))
    return out


def ping_says_up(text: str) -> bool:
    """``scontrol ping``: up when any slurmctld (primary or backup) "is UP"."""
    return any(line.rstrip().endswith(" is UP") for line in text.splitlines())


def unmunge_says_ok(text: str) -> bool:
    return any(re.match(r"^STATUS:\s+Success \(0\)", line) for line in text.splitlines())


def _answers(ctx: CollectContext, argv, timeout: float, input_text: Optional[str] = None):
    """The command's result, or None when it failed or timed out."""
    try:
        if input_text is None:
            return ctx.run(list(argv), timeout=timeout)
        return ctx.run(list(argv), timeout=timeout, input_text=input_text)
    except SlurmCommandError:
        return None


def daemon_metrics(ctx: CollectContext, timeout: float, ctld_answered: bool = False) -> List[Metric]:
    """slurm.up for each daemon whose client tool is installed here. ``ctld_answered``: sdiag
    got slurmctld's answer this cycle, which proves it is up: no `scontrol ping` then (one RPC
    less per cycle; the ping runs when sdiag failed, to tell "down" from "sdiag broken")."""
    out = []
    if ctld_answered:
        out.append(Metric.of("slurm.up", 1, daemon="slurmctld"))
    elif shutil.which(PING_ARGV[0]):
        result = _answers(ctx, PING_ARGV, timeout)
        out.append(Metric.of("slurm.up", int(bool(result and ping_says_up(result.stdout))),
                             daemon="slurmctld"))
    if shutil.which(DBD_ARGV[0]):
        result = _answers(ctx, DBD_ARGV, timeout)
        out.append(Metric.of("slurm.up", int(bool(result and result.stdout.strip())), daemon="slurmdbd"))
    if shutil.which("munge") and shutil.which("unmunge"):
        cred = _answers(ctx, ("munge", "-n"), timeout)
        decoded = _answers(ctx, ("unmunge",), timeout, input_text=cred.stdout) if cred else None
        out.append(Metric.of("slurm.up", int(bool(decoded and unmunge_says_ok(decoded.stdout))),
                             daemon="munge"))
    return out


@register
class SlurmHealthCollector(Collector):
    name = "slurm_health"
    help = ("slurmctld load from sdiag (threads, agent queue, RPCs per type and user); daemon "
            "reachability; fairshare per account and user (sshare).")
    interval_s = 120.0
    phase_s = 60.0     # between the nodes collector's sinfo cycles: at most 3 slurmctld RPCs a cycle
    needs = "sdiag; scontrol ping, sacctmgr, munge/unmunge for reachability; sshare for fairshare"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        timeout = float(setting(ctx, self.name, "timeout_s"))
        ping_timeout = float(setting(ctx, self.name, "ping_timeout_s"))
        try:
            metrics = sdiag_metrics(parse_sdiag(run_tool(ctx, SDIAG_ARGV, timeout).stdout))
        except SlurmCommandError as exc:   # slurmctld down: slurm.up says so below
            ctx.state["sdiag_error"] = str(exc)
            metrics = []
        shares = fairshare_metrics(ctx, timeout, float(setting(ctx, self.name, "fairshare_interval_s")))
        return metrics + daemon_metrics(ctx, ping_timeout, ctld_answered=bool(metrics)) + shares
