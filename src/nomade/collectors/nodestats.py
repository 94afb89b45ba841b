"""Node statistics from /proc, like iostat/mpstat/vmstat but without their since-boot first report.

Reads /proc/stat, /proc/diskstats, /proc/vmstat, /proc/meminfo, /proc/loadavg and
/proc/pressure/{cpu,memory,io}. Rates need two samples: the first cycle only primes
``ctx.state`` (gauges such as load and available memory are reported at once). A counter that
goes down restarts its rate (no value that cycle); a counter that wrapped at its width (2^32 for
diskstats' io_ticks, 2^64 otherwise) is unwrapped; a rate is never negative.

The recorder's /proc readers (``nomade.recorder.procfs``) read one process each; nothing in them
reads these node-wide files, so the parsers are here, each taking text.
"""

import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import CollectContext, Collector, CollectorSkipped, Metric, register

SECTOR_BYTES = 512                     # diskstats counts 512-byte sectors whatever the device
DEFAULT_EXCLUDE_DEVICES = r"^(loop|ram|zram|fd|sr)\d+$"
PSI_RESOURCES = ("cpu", "memory", "io")


# ---- parsers (text in, plain data out; malformed lines are skipped) ------------------------

def _ints(tokens: List[str]) -> Optional[List[int]]:
    try:
        values = [int(t) for t in tokens]
    except ValueError:
        return None
    return values if all(v >= 0 for v in values) else None


def parse_stat(text: str) -> Tuple[Dict[str, Tuple[int, int, int]], Optional[int]]:
    """/proc/stat -> ({"cpu": (busy, iowait, total), "cpu0": ...}, procs_blocked).
    Times in clock ticks; total = user+nice+system+idle+iowait+irq+softirq+steal (guest time is
    already inside user), busy = total - idle - iowait."""
    cpus: Dict[str, Tuple[int, int, int]] = {}
    blocked: Optional[int] = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if re.fullmatch(r"cpu\d*", parts[0]) and len(parts) >= 5:
            vals = _ints(parts[1:9])
            if vals is None:
                continue
            vals += [0] * (8 - len(vals))
            total = sum(vals)
            idle, iowait = vals[3], vals[4]
            cpus[parts[0]] = (total - idle - iowait, iowait, total)
        elif parts[0] == "procs_blocked" and len(parts) == 2:
            vals = _ints(parts[1:])
            blocked = vals[0] if vals else None
    return cpus, blocked


def parse_diskstats(text: str) -> Dict[str, Tuple[int, int, int]]:
    """/proc/diskstats -> {device: (sectors_read, sectors_written, io_ticks_ms)}."""
    out: Dict[str, Tuple[int, int, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        vals = _ints([parts[5], parts[9], parts[12]])
        if vals is not None and parts[2].isprintable():
            out[parts[2]] = (vals[0], vals[1], vals[2])
    return out


def parse_keyvalue(text: str) -> Dict[str, int]:
    """/proc/vmstat ("pswpin 12") and /proc/meminfo ("MemAvailable:  123 kB", returned in bytes)."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) < 2:
            continue
        vals = _ints(parts[1:2])
        if vals is None:
            continue
        out[parts[0]] = vals[0] * 1024 if len(parts) > 2 and parts[2] == "kB" else vals[0]
    return out


def parse_pressure(text: str) -> Dict[str, Dict[str, float]]:
    """/proc/pressure/<resource> -> {"some": {"avg10": %, "total": microseconds}, "full": ...}."""
    out: Dict[str, Dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        fields: Dict[str, float] = {}
        for item in parts[1:]:
            key, _, value = item.partition("=")
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number) and number >= 0:
                fields[key] = number
        if "avg10" in fields and "total" in fields:
            out[parts[0]] = fields
    return out


def parse_loadavg(text: str) -> Optional[float]:
    """/proc/loadavg -> the 1-minute load average."""
    parts = text.split()
    try:
        value = float(parts[0]) if parts else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


# ---- counters ---------------------------------------------------------------------------

def counter_delta(prev: float, cur: float, width_bits: int = 64) -> Optional[float]:
    """Increase of a monotonic counter between two reads: None when it went down for any reason
    but a wrap at ``width_bits`` (a reset, a device that vanished and came back)."""
    if cur >= prev:
        return cur - prev
    span = 2 ** width_bits
    if prev < span:
        wrapped = cur + span - prev
        if wrapped < span // 2:
            return wrapped
    return None


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


@register
class NodeStatsCollector(Collector):
    name = "nodestats"
    help = "CPU busy/imbalance/iowait, disk utilisation and throughput, swap, memory, PSI, load"
    interval_s = 60.0
    needs = "/proc/stat, /proc/diskstats, /proc/vmstat, /proc/meminfo, /proc/pressure (Linux >= 4.20)"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        stat_text = _read(ctx.proc / "stat")
        if stat_text is None:
            raise CollectorSkipped(f"no {ctx.proc}/stat (not Linux?)")
        now = ctx.now()
        host = ctx.hostname
        cur = {"t": now}
        cur["cpu"], blocked = parse_stat(stat_text)
        cur["disk"] = parse_diskstats(_read(ctx.proc / "diskstats") or "")
        cur["vm"] = parse_keyvalue(_read(ctx.proc / "vmstat") or "")
        psi = {r: parse_pressure(_read(ctx.proc / "pressure" / r) or "") for r in PSI_RESOURCES}
        cur["psi"] = {f"{r}.{k}": v["total"] for r, lines in psi.items() for k, v in lines.items()}
        prev = ctx.state.get("prev")
        ctx.state["prev"] = cur

        out: List[Metric] = []
        mem = parse_keyvalue(_read(ctx.proc / "meminfo") or "")
        if "MemAvailable" in mem:
            out.append(Metric.of("node.mem_available_bytes", mem["MemAvailable"], host))
        load1 = parse_loadavg(_read(ctx.proc / "loadavg") or "")
        if load1 is not None:
            out.append(Metric.of("node.load1", load1, host))
        if blocked is not None:
            out.append(Metric.of("node.procs_blocked", blocked, host))
        for resource, lines in psi.items():
            for kind, fields in lines.items():
                if resource == "cpu" and kind == "full":
                    continue          # always 0 at system level (kernel docs)
                out.append(Metric.of(f"node.psi_{resource}_{kind}", fields["avg10"], host,
                                     window="avg10"))
        if prev is None or now <= prev["t"]:
            return out                # the first sample primes; never a since-boot average
        dt = now - prev["t"]
        out += _cpu_metrics(prev["cpu"], cur["cpu"], host)
        exclude = re.compile(ctx.settings.get("exclude_devices", DEFAULT_EXCLUDE_DEVICES))
        out += _disk_metrics(prev["disk"], cur["disk"], dt, host, exclude)
        out += _swap_metrics(prev["vm"], cur["vm"], dt, host)
        for key, total in cur["psi"].items():
            before = prev["psi"].get(key)
            delta = counter_delta(before, total) if before is not None else None
            if delta is not None:
                resource, kind = key.split(".")
                if resource == "cpu" and kind == "full":
                    continue
                pct = min(100.0, delta / 1e6 / dt * 100.0)
                out.append(Metric.of(f"node.psi_{resource}_{kind}", pct, host, window="interval"))
        return out


def _cpu_metrics(prev: Dict[str, Tuple[int, int, int]], cur: Dict[str, Tuple[int, int, int]],
                 host: str) -> List[Metric]:
    out: List[Metric] = []
    busy_by_core: List[float] = []
    for name, (busy, iowait, total) in cur.items():
        if name not in prev:
            continue
        d_busy = counter_delta(prev[name][0], busy)
        d_iowait = counter_delta(prev[name][1], iowait)
        d_total = counter_delta(prev[name][2], total)
        if d_busy is None or d_total is None or d_total <= 0:
            continue
        pct = min(100.0, 100.0 * d_busy / d_total)
        if name == "cpu":
            out.append(Metric.of("node.cpu_busy_pct", pct, host, cpu="all"))
            if d_iowait is not None:
                out.append(Metric.of("node.iowait_pct", min(100.0, 100.0 * d_iowait / d_total), host))
        else:
            busy_by_core.append(pct)
            out.append(Metric.of("node.cpu_busy_pct", pct, host, cpu=name[3:]))
    if len(busy_by_core) >= 2:
        mean = sum(busy_by_core) / len(busy_by_core)
        std = math.sqrt(sum((b - mean) ** 2 for b in busy_by_core) / len(busy_by_core))
        out.append(Metric.of("node.cpu_imbalance", std / mean if mean > 0 else 0.0, host))
    return out


def _disk_metrics(prev: Dict[str, Tuple[int, int, int]], cur: Dict[str, Tuple[int, int, int]],
                  dt: float, host: str, exclude) -> List[Metric]:
    out: List[Metric] = []
    for dev, (rd, wr, ticks) in sorted(cur.items()):
        if dev not in prev or exclude.search(dev):
            continue
        d_rd = counter_delta(prev[dev][0], rd)
        d_wr = counter_delta(prev[dev][1], wr)
        d_ticks = counter_delta(prev[dev][2], ticks, width_bits=32)
        if d_ticks is not None:
            out.append(Metric.of("node.disk_util_pct", min(100.0, d_ticks / (dt * 1000.0) * 100.0),
                                 host, device=dev))
        if d_rd is not None:
            out.append(Metric.of("node.disk_read_bps", d_rd * SECTOR_BYTES / dt, host, device=dev))
        if d_wr is not None:
            out.append(Metric.of("node.disk_write_bps", d_wr * SECTOR_BYTES / dt, host, device=dev))
    return out


def _swap_metrics(prev: Dict[str, int], cur: Dict[str, int], dt: float, host: str) -> List[Metric]:
    out: List[Metric] = []
    for key, metric in (("pswpin", "node.swap_in_pps"), ("pswpout", "node.swap_out_pps")):
        if key in prev and key in cur:
            delta = counter_delta(prev[key], cur[key])
            if delta is not None:
                out.append(Metric.of(metric, delta / dt, host))
    return out
