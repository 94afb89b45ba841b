"""ZFS pools where ``zpool`` exists: health, size/allocation, vdev error counters, ARC hit ratio.

``zpool list -Hp -o ...`` (tab-separated, exact numbers) and ``zpool status -p`` (the config
table's READ/WRITE/CKSUM per vdev) go through the subprocess door; the ARC hit ratio is the share
of hits among Δhits+Δmisses in /proc/spl/kstat/zfs/arcstats between two cycles (the first primes).
Skipped with one line where there is neither a ``zpool`` command nor the ZFS kstats.
"""

import shutil
from typing import Dict, List, Optional, Tuple

from ..errors import SlurmCommandError
from .base import CollectContext, Collector, CollectorSkipped, Metric, register
from .nodestats import counter_delta

LIST_FIELDS = ("name", "size", "allocated", "free", "fragmentation", "capacity", "health")


def _number(token: str) -> Optional[float]:
    token = token.rstrip("%")
    if not token.isdigit():
        return None                  # "-" (no value), garbage
    value = int(token)
    return float(value) if value < 2 ** 64 else None


def parse_zpool_list(text: str) -> List[Dict[str, object]]:
    """``zpool list -Hp -o name,size,allocated,free,fragmentation,capacity,health``."""
    pools = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) != len(LIST_FIELDS) or not cols[0] or not cols[0].isprintable():
            continue
        row: Dict[str, object] = {"name": cols[0], "health": cols[6].strip()}
        for key, token in zip(LIST_FIELDS[1:6], cols[1:6]):
            row[key] = _number(token.strip())
        if row["size"] is None:
            continue
        pools.append(row)
    return pools


def parse_zpool_status(text: str) -> List[Tuple[str, str, str, int, int, int]]:
    """Rows of every pool's config table in ``zpool status -p``:
    (pool, vdev, state, read_errors, write_errors, cksum_errors). Spares, whose rows have no
    counters, and malformed rows are skipped."""
    out = []
    pool = None
    in_config = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("pool:"):
            pool, in_config = stripped.partition(":")[2].strip(), False
            continue
        if stripped.startswith("NAME") and "CKSUM" in stripped:
            in_config = pool is not None
            continue
        if not in_config:
            continue
        if stripped.startswith("errors:") or not stripped:
            in_config = False             # the table ends at its blank line
            continue
        parts = stripped.split()
        if len(parts) < 5 or not all(p.isdigit() for p in parts[2:5]) or not stripped.isprintable():
            continue
        counts = [int(p) for p in parts[2:5]]
        if max(counts) >= 2 ** 64:
            continue
        out.append((pool, parts[0], parts[1], counts[0], counts[1], counts[2]))
    return out


def parse_arcstats(text: str) -> Dict[str, int]:
    """/proc/spl/kstat/zfs/arcstats ("name type data" rows) -> {name: value}."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = int(parts[2])
    return out


@register
class ZfsCollector(Collector):
    name = "zfs"
    help = "ZFS pool health, capacity, vdev read/write/checksum errors, ARC hit ratio"
    interval_s = 300.0
    needs = "zpool (zfsutils) and /proc/spl/kstat/zfs/arcstats"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        arc_path = ctx.proc / "spl" / "kstat" / "zfs" / "arcstats"
        zpool = ctx.settings.get("zpool") or shutil.which("zpool")
        if not zpool and not arc_path.exists():
            raise CollectorSkipped("no zpool command and no ZFS kstats (ZFS not installed)")
        timeout = float(ctx.settings.get("timeout_s", 30.0))
        host = ctx.hostname
        out: List[Metric] = []
        if zpool:
            out += _pool_metrics(ctx, zpool, timeout, host)
        try:
            arc = parse_arcstats(arc_path.read_text(errors="replace"))
        except OSError:
            arc = {}
        out += _arc_metrics(ctx, arc, host)
        return out


def _pool_metrics(ctx: CollectContext, zpool: str, timeout: float, host: str) -> List[Metric]:
    out: List[Metric] = []
    try:
        listed = ctx.run([zpool, "list", "-Hp", "-o", ",".join(LIST_FIELDS)], timeout=timeout)
        status = ctx.run([zpool, "status", "-p"], timeout=timeout)
    except SlurmCommandError:
        return [Metric.of("zfs.zpool_responding", 0, host)]
    out.append(Metric.of("zfs.zpool_responding", 1, host))
    for pool in parse_zpool_list(listed.stdout):
        name = str(pool["name"])
        out.append(Metric.of("zfs.pool_healthy", 1 if pool["health"] == "ONLINE" else 0, host,
                             pool=name, health=pool["health"]))
        for key, metric in (("size", "zfs.pool_size_bytes"), ("allocated", "zfs.pool_alloc_bytes"),
                            ("free", "zfs.pool_free_bytes"), ("fragmentation", "zfs.pool_frag_pct"),
                            ("capacity", "zfs.pool_capacity_pct")):
            if pool[key] is not None:
                out.append(Metric.of(metric, pool[key], host, pool=name))
    for pool_name, vdev, state, read, write, cksum in parse_zpool_status(status.stdout):
        labels = {"pool": pool_name, "vdev": vdev}
        out += [Metric.of("zfs.vdev_read_errors", read, host, **labels),
                Metric.of("zfs.vdev_write_errors", write, host, **labels),
                Metric.of("zfs.vdev_cksum_errors", cksum, host, **labels),
                Metric.of("zfs.vdev_online", 1 if state == "ONLINE" else 0, host, state=state,
                          **labels)]
    return out


def _arc_metrics(ctx: CollectContext, arc: Dict[str, int], host: str) -> List[Metric]:
    out: List[Metric] = []
    if "size" in arc:
        out.append(Metric.of("zfs.arc_size_bytes", arc["size"], host))
    if "hits" not in arc or "misses" not in arc:
        return out
    prev = ctx.state.get("arc")
    ctx.state["arc"] = (arc["hits"], arc["misses"])
    if prev is None:
        return out
    d_hits, d_misses = counter_delta(prev[0], arc["hits"]), counter_delta(prev[1], arc["misses"])
    if d_hits is not None and d_misses is not None and d_hits + d_misses > 0:
        out.append(Metric.of("zfs.arc_hit_ratio", d_hits / (d_hits + d_misses), host))
    return out
