"""NFS client statistics per mount from /proc/self/mountstats: ops/s, throughput, RTT and
retransmissions per operation type, from two samples kept in ``ctx.state``.

Per-op lines are ``OP: ops trans timeouts bytes_sent bytes_recv queue_ms rtt_ms execute_ms
[errors]`` (the fields Debian's nfsiostat reads): retransmissions = Δtrans - Δops, RTT = Δrtt_ms /
Δops. Application byte counters come from the recorder's ``parse_mountstats`` (one parser for the
``bytes:`` line). The first sample primes; a counter that goes down (remount) restarts the rate.
"""

from typing import Dict, List, Optional, Tuple

from ..recorder.mounts import _unescape as unescape_mount_field
from ..recorder.mounts import parse_mountstats
from .base import CollectContext, Collector, CollectorSkipped, Metric, register
from .nodestats import counter_delta

DEFAULT_OPS = ("READ", "WRITE", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "OPEN", "CLOSE",
               "COMMIT", "READDIR", "READDIRPLUS", "CREATE", "REMOVE", "RENAME")
OpCounters = Tuple[int, int, int]     # ops, transmissions, cumulative RTT ms


def parse_nfs_ops(text: str) -> Dict[str, Dict[str, object]]:
    """{mount_point: {"server": "nas", "ops": {"READ": (ops, trans, rtt_ms), ...}}} for every NFS
    mount in /proc/self/mountstats text. Lines that are not well-formed are skipped."""
    out: Dict[str, Dict[str, object]] = {}
    current: Optional[Dict[str, object]] = None
    in_ops = False
    for line in text.splitlines():
        if line.startswith("device "):
            current, in_ops = _device(line), False
            if current is not None:
                out[str(current.pop("mount"))] = current
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped == "per-op statistics":
            in_ops = True
            continue
        if in_ops:
            name, sep, rest = stripped.partition(":")
            values = rest.split()
            if not sep or not name.isalnum() or len(values) < 8:
                continue
            try:
                n = [int(v) for v in values[:7]]
            except ValueError:
                continue
            if min(n) >= 0:
                current["ops"][name] = (n[0], n[1], n[6])  # type: ignore[index]
    return out


def _device(line: str) -> Optional[Dict[str, object]]:
    parts = line.split()
    if "on" not in parts or "fstype" not in parts:
        return None
    i_on, i_fs = parts.index("on"), parts.index("fstype")
    if i_on + 1 >= len(parts) or i_fs + 1 >= len(parts) or not parts[i_fs + 1].startswith("nfs"):
        return None
    source = unescape_mount_field(parts[1])
    server = source.partition(":/")[0] if ":/" in source else source.rpartition(":")[0]
    return {"mount": unescape_mount_field(parts[i_on + 1]), "server": server.strip("[]"), "ops": {}}


def _clean(label: str) -> str:
    """Control bytes in a mount path or server name never reach a label as themselves."""
    return "".join(c if c.isprintable() else "?" for c in label)


@register
class NfsCollector(Collector):
    name = "nfs"
    help = "NFS client ops/s, read/write throughput, RTT and retransmissions per mount and op"
    interval_s = 60.0
    needs = "/proc/self/mountstats with at least one NFS mount"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        try:
            text = (ctx.proc / "self" / "mountstats").read_text(errors="replace")
        except OSError:
            raise CollectorSkipped(f"no {ctx.proc}/self/mountstats") from None
        mounts = parse_nfs_ops(text)
        if not mounts:
            raise CollectorSkipped("no NFS mounts")
        now = ctx.now()
        cur = {"t": now, "mounts": mounts, "bytes": parse_mountstats(text)}
        prev = ctx.state.get("prev")
        ctx.state["prev"] = cur
        if prev is None or now <= prev["t"]:
            return []
        dt = now - prev["t"]
        wanted = set(ctx.settings.get("ops", DEFAULT_OPS))
        out: List[Metric] = []
        for mount, info in sorted(mounts.items()):
            before = prev["mounts"].get(mount)
            if before is None or before["server"] != info["server"]:
                continue              # new or remounted elsewhere: this sample primes it
            labels = {"mount": _clean(mount), "server": _clean(str(info["server"]))}
            out += _op_metrics(before["ops"], info["ops"], wanted, dt, ctx.hostname, labels)
            out += _byte_metrics(prev["bytes"].get(mount), cur["bytes"].get(mount), dt,
                                 ctx.hostname, labels)
        return out


def _op_metrics(prev: Dict[str, OpCounters], cur: Dict[str, OpCounters], wanted, dt: float,
                host: str, labels: Dict[str, str]) -> List[Metric]:
    out: List[Metric] = []
    total_ops = total_retrans = 0.0
    complete = True
    for op, (ops, trans, rtt) in sorted(cur.items()):
        if op not in prev:
            continue
        d_ops = counter_delta(prev[op][0], ops)
        d_trans = counter_delta(prev[op][1], trans)
        d_rtt = counter_delta(prev[op][2], rtt)
        if d_ops is None or d_trans is None:
            complete = False
            continue
        retrans = max(0.0, d_trans - d_ops)
        total_ops += d_ops
        total_retrans += retrans
        if op not in wanted:
            continue
        out.append(Metric.of("nfs.ops_per_s", d_ops / dt, host, op=op, **labels))
        out.append(Metric.of("nfs.retrans_per_s", retrans / dt, host, op=op, **labels))
        if d_ops > 0 and d_rtt is not None:
            out.append(Metric.of("nfs.rtt_ms", d_rtt / d_ops, host, op=op, **labels))
    if complete:
        out.append(Metric.of("nfs.ops_per_s", total_ops / dt, host, op="all", **labels))
        out.append(Metric.of("nfs.retrans_per_s", total_retrans / dt, host, op="all", **labels))
    return out


def _byte_metrics(prev: Optional[Dict[str, int]], cur: Optional[Dict[str, int]], dt: float,
                  host: str, labels: Dict[str, str]) -> List[Metric]:
    if prev is None or cur is None:
        return []
    out: List[Metric] = []
    for key, metric in (("read_bytes", "nfs.read_bps"), ("write_bytes", "nfs.write_bps")):
        delta = counter_delta(prev[key], cur[key])
        if delta is not None:
            out.append(Metric.of(metric, delta / dt, host, **labels))
    return out

