"""nodes: state per node with drain/down reason, who set it and when, CPU and memory allocation,
load; node temperatures from hwmon when run on a node.

ONE ``sinfo -N -O`` call per cycle. The reason (free text written by admins, may hold '|', '='
or a newline) is the last field and split with maxsplit; a line that does not start like a node
record is the continuation of the previous node's reason."""

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional

from .base import CollectContext, Collector, Metric, register
from .external import clean_label, run_tool, setting

SINFO_FIELDS = ("NodeList", "StateComplete", "CPUsState", "Memory", "AllocMem", "CPUsLoad",
                "Timestamp", "User", "Reason")
SINFO_ARGV = ("sinfo", "-h", "-N", "-O",
              ",".join(f"{f}:|" for f in SINFO_FIELDS[:-1]) + "," + SINFO_FIELDS[-1] + ":")  # no size: no truncation
MIB = 1024 * 1024
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CPUS = re.compile(r"^(\d+)/(\d+)/(\d+)/(\d+)$")


@dataclass(frozen=True)
class NodeRecord:
    node: str
    state: str
    cpus_alloc: int
    cpus_total: int
    mem_total_mb: Optional[float]
    mem_alloc_mb: Optional[float]
    load1: Optional[float]
    reason: str
    reason_user: str
    reason_time: str


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) < 2.0 ** 63 else None


def _unset(text: str) -> str:
    return "" if text.strip() in ("none", "Unknown", "N/A", "(null)", "") else text.strip()


def parse_sinfo_nodes(text: str) -> List[NodeRecord]:
    """Records of ``sinfo -h -N -O SINFO_FIELDS`` (one per node; a node listed once per partition
    is kept once)."""
    nodes: List[NodeRecord] = []
    for line in text.splitlines():
        fields = line.split("|", len(SINFO_FIELDS) - 1)
        cpus = _CPUS.match(fields[2].strip()) if len(fields) == len(SINFO_FIELDS) else None
        if cpus is None or not _NODE.match(fields[0].strip()):
            if nodes and line.strip():          # a reason that went on over a newline
                last = nodes[-1]
                nodes[-1] = replace(last, reason=clean_label(last.reason + " " + line))
            continue
        name = fields[0].strip()
        if any(n.node == name for n in nodes):
            continue
        nodes.append(NodeRecord(
            node=name, state=fields[1].strip(), cpus_alloc=int(cpus.group(1)),
            cpus_total=int(cpus.group(4)), mem_total_mb=_number(fields[3]),
            mem_alloc_mb=_number(fields[4]), load1=_number(fields[5]),
            reason=clean_label(_unset(fields[8])), reason_user=clean_label(_unset(fields[7]), 64),
            reason_time=clean_label(_unset(fields[6]), 32)))
    return nodes


def node_metrics(nodes: List[NodeRecord]) -> List[Metric]:
    out = []
    for n in nodes:
        out.append(Metric.of("nodes.state", 1, node=n.node, state=n.state, reason=n.reason,
                             reason_user=n.reason_user, reason_time=n.reason_time))
        out.append(Metric.of("nodes.cpus_alloc", n.cpus_alloc, node=n.node))
        out.append(Metric.of("nodes.cpus_total", n.cpus_total, node=n.node))
        if n.mem_alloc_mb is not None:
            out.append(Metric.of("nodes.mem_alloc_bytes", n.mem_alloc_mb * MIB, node=n.node))
        if n.mem_total_mb is not None:
            out.append(Metric.of("nodes.mem_total_bytes", n.mem_total_mb * MIB, node=n.node))
        if n.load1 is not None:
            out.append(Metric.of("nodes.load1", n.load1, node=n.node))
    return out


def read_hwmon(root: Path) -> List[Metric]:
    """``node.temp_c`` per sensor from ``root/class/hwmon/hwmon*/temp*_input`` (millidegrees);
    the sensor label is ``<chip name>/<temp label or tempN>``. Unreadable files are left out."""
    out = []
    for chip in sorted((root / "class" / "hwmon").glob("hwmon*")):
        chip_name = _read(chip / "name") or chip.name
        for probe in sorted(chip.glob("temp*_input")):
            raw = _number(_read(probe) or "")
            if raw is None:
                continue
            label = _read(chip / probe.name.replace("_input", "_label")) or probe.name[:-6]
            out.append(Metric.of("node.temp_c", raw / 1000.0, sensor=clean_label(f"{chip_name}/{label}", 64)))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


@register
class NodesCollector(Collector):
    name = "nodes"
    help = "Node states with drain/down reasons (who, when), CPU/memory allocation, load, temperatures."
    interval_s = 120.0   # sinfo costs 2 RPCs; slurm_health's sdiag runs in the cycles between
    needs = "sinfo (one call per cycle); /sys/class/hwmon for temperatures"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        timeout = float(setting(ctx, self.name, "timeout_s"))
        result = run_tool(ctx, SINFO_ARGV, timeout)
        metrics = node_metrics(parse_sinfo_nodes(result.stdout))
        if setting(ctx, self.name, "hwmon"):
            metrics.extend(replace(m, host=ctx.hostname) for m in read_hwmon(ctx.sys))
        return metrics
