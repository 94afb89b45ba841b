"""licenses: FlexLM (``lmutil lmstat -a -c port@host``) and RLM (``rlmutil rlmstat -a -c
port@host``) servers from ``[collectors.licenses] flexlm = [...]`` and ``rlm = [...]``.

Per feature: ``license.issued``, ``license.in_use`` (labels server, vendor, feature), who holds
them (``license.held``: feature, user, host), users waiting (``license.queued``), expiry
(``license.expires_ts``, epoch seconds at 00:00 UTC of the expiry day; a permanent license has no
such metric), ``license.server_up`` per server. A server that does not answer is down (0) and
reports no feature metrics: never "0 in use"."""

import calendar
import datetime
import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import SlurmCommandError
from .base import CollectContext, Collector, CollectorSkipped, Metric, register
from .external import clean_label, setting

MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                       "sep", "oct", "nov", "dec"), start=1)}
PERMANENT = "permanent"


@dataclass
class Feature:
    vendor: str
    issued: Optional[float] = None
    in_use: Optional[float] = None
    expires: Optional[str] = None          # "permanent", a date text, or None (not shown)
    held: Dict[Tuple[str, str], float] = field(default_factory=dict)
    queued: float = 0.0


@dataclass
class LicenseStatus:
    up: bool
    features: Dict[str, Feature] = field(default_factory=dict)
    vendors_up: Dict[str, bool] = field(default_factory=dict)


def expiry_ts(text: str) -> Optional[float]:
    """Epoch seconds of ``31-dec-2026`` (00:00 UTC); None for permanent ("permanent",
    "1-jan-0", "01-jan-0000", year 0) or text that is not a date."""
    match = re.match(r"^(\d{1,2})-([a-z]{3})-(\d{1,4})$", text.strip().lower())
    if not match or match.group(2) not in MONTHS or int(match.group(3)) == 0:
        return None
    year = int(match.group(3))
    year += 2000 if year < 100 else 0
    try:
        day = datetime.date(year, MONTHS[match.group(2)], int(match.group(1)))
    except ValueError:                       # 31-feb, year past 9999
        return None
    return float(calendar.timegm(day.timetuple()))


def _earliest(current: Optional[str], new: str) -> str:
    if current is None or expiry_ts(current) is None:
        return new if expiry_ts(new) is not None or current is None else current
    new_ts = expiry_ts(new)
    return new if new_ts is not None and new_ts < (expiry_ts(current) or 0) else current


_FLEX_USERS = re.compile(r"^Users of (.+?):\s+\(Total of (\d+) licenses? issued;\s+Total of (\d+) "
                         r"licenses? in use\)")
_FLEX_FEATURE = re.compile(r'^\s*"([^"]+)" v\S+, vendor: ([^,\s]+)(?:, expiry: (\S+))?')
_FLEX_HOLDER = re.compile(r"^\s+(\S+)\s+(\S+)\s.*?\(v[^)]*\)\s+\([^)]*\),\s+start\s[^,]*?(?:,\s+(\d+) licenses?)?"
                          r"(?:\s+\(linger.*)?$")
_FLEX_QUEUED = re.compile(r"^\s+(\S+)\s+(\S+)\s.*\bqueued for (\d+) licenses?")
_FLEX_VENDOR = re.compile(r"^\s+([A-Za-z0-9_.-]+): (UP|.*down.*)", re.IGNORECASE)


def parse_lmstat(text: str) -> LicenseStatus:
    """``lmstat -a`` text: server up when any server line says "license server UP"."""
    status = LicenseStatus(up=bool(re.search(r": license server UP", text)))
    current: Optional[Feature] = None
    name = ""
    in_vendors = False
    default_vendor = ""
    for line in text.splitlines():
        if line.startswith("Vendor daemon status"):
            in_vendors = True
            continue
        if line.startswith("Feature usage info"):
            in_vendors = False
            continue
        vendor = _FLEX_VENDOR.match(line) if in_vendors else None
        if vendor:
            status.vendors_up[vendor.group(1)] = vendor.group(2) == "UP"
            default_vendor = default_vendor or vendor.group(1)
            continue
        users = _FLEX_USERS.match(line)
        if users:
            name = clean_label(users.group(1), 128)
            current = status.features.setdefault(name, Feature(vendor=default_vendor))
            current.issued, current.in_use = float(users.group(2)), float(users.group(3))
            continue
        if current is None:
            continue
        feature = _FLEX_FEATURE.match(line)
        if feature:
            current.vendor = clean_label(feature.group(2), 64)
            if feature.group(3):
                current.expires = _earliest(current.expires, feature.group(3))
            continue
        queued = _FLEX_QUEUED.match(line)
        if queued:
            current.queued += float(queued.group(3))
            continue
        holder = _FLEX_HOLDER.match(line)
        if holder:
            key = (clean_label(holder.group(1), 64), clean_label(holder.group(2), 128))
            current.held[key] = current.held.get(key, 0.0) + float(holder.group(3) or 1)
    return status


_RLM_POOL_HEADER = re.compile(r"^\s*(\S+) license pool status on ")
_RLM_USAGE_HEADER = re.compile(r"^\s*(\S+) license usage status on ")
_RLM_POOL = re.compile(r"^\s*(\S+) v\S+\s*$")
_RLM_COUNT = re.compile(r"^\s*count: (\d+), # reservations: (\d+), inuse: (\d+), exp: (\S+)")
_RLM_USE = re.compile(r"^\s*(\S+) v\S+: (.+?)@(\S+) (\d+)/\d+ at ")


def parse_rlmstat(text: str) -> LicenseStatus:
    """``rlmstat -a`` text: up when rlm reports its status or a license pool."""
    status = LicenseStatus(up=bool(re.search(r"^\s*rlm status on |license pool status on ", text, re.M)))
    vendor = ""
    pool: Optional[str] = None
    for line in text.splitlines():
        header = _RLM_POOL_HEADER.match(line) or _RLM_USAGE_HEADER.match(line)
        if header:
            vendor, pool = clean_label(header.group(1), 64), None
            status.vendors_up[vendor] = True
            continue
        use = _RLM_USE.match(line)
        if use:
            feat = status.features.setdefault(clean_label(use.group(1), 128), Feature(vendor=vendor))
            key = (clean_label(use.group(2), 64), clean_label(use.group(3), 128))
            feat.held[key] = feat.held.get(key, 0.0) + float(use.group(4))
            continue
        count = _RLM_COUNT.match(line)
        if count and pool:
            feat = status.features.setdefault(pool, Feature(vendor=vendor))
            feat.issued = (feat.issued or 0.0) + float(count.group(1))
            feat.in_use = (feat.in_use or 0.0) + float(count.group(3))
            feat.expires = _earliest(feat.expires, count.group(4))
            continue
        new_pool = _RLM_POOL.match(line)
        pool = clean_label(new_pool.group(1), 128) if new_pool and vendor else pool
    return status


def held_metric(count: float, **labels: str) -> Metric:
    """``license.held``; built directly because its ``host`` label (where the license is used) is
    not ``Metric.host`` (where it was measured)."""
    return Metric("license.held", float(count), tuple(sorted(labels.items())))


def status_metrics(server: str, kind: str, status: LicenseStatus) -> List[Metric]:
    out = [Metric.of("license.server_up", int(status.up), server=server, type=kind)]
    if not status.up:
        return out
    for vendor, up in sorted(status.vendors_up.items()):
        out.append(Metric.of("license.vendor_up", int(up), server=server, vendor=vendor))
    for name, feat in sorted(status.features.items()):
        labels = {"server": server, "vendor": feat.vendor, "feature": name}
        if feat.issued is not None:
            out.append(Metric.of("license.issued", feat.issued, **labels))
        if feat.in_use is not None:
            out.append(Metric.of("license.in_use", feat.in_use, **labels))
        if feat.queued:
            out.append(Metric.of("license.queued", feat.queued, **labels))
        ts = expiry_ts(feat.expires or "")
        if ts is not None:
            out.append(Metric.of("license.expires_ts", ts, **labels))
        for (user, host), n in sorted(feat.held.items()):
            out.append(held_metric(n, server=server, feature=name, user=user, host=host))
    return out


def query_server(ctx: CollectContext, tool: str, kind: str, server: str, timeout: float) -> LicenseStatus:
    """One server's status; a server that times out or whose tool fails is down."""
    sub = "lmstat" if kind == "flexlm" else "rlmstat"
    try:
        result = ctx.run([tool, sub, "-a", "-c", server], timeout=timeout, check=False)
    except SlurmCommandError:
        return LicenseStatus(up=False)
    return (parse_lmstat if kind == "flexlm" else parse_rlmstat)(result.stdout)


@register
class LicensesCollector(Collector):
    name = "licenses"
    help = "FlexLM and RLM license servers: issued/in use per feature, holders, expiry, server up."
    interval_s = 300.0
    needs = "lmutil (FlexLM) and/or rlmutil (RLM) and servers in [collectors.licenses]"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        timeout = float(setting(ctx, self.name, "timeout_s"))
        metrics: List[Metric] = []
        missing = []
        configured = False
        for kind, tool_key in (("flexlm", "lmutil"), ("rlm", "rlmutil")):
            servers = list(setting(ctx, self.name, kind) or [])
            tool = str(setting(ctx, self.name, tool_key))
            configured = configured or bool(servers)
            if servers and shutil.which(tool) is None:
                missing.append(tool)
                continue
            for server in servers:
                metrics.extend(status_metrics(server, kind, query_server(ctx, tool, kind, server, timeout)))
        if not configured:
            raise CollectorSkipped("no license servers configured ([collectors.licenses] flexlm, rlm)")
        if missing and not metrics:
            raise CollectorSkipped(f"{' and '.join(missing)} not found on PATH")
        ctx.state["missing_tools"] = missing
        return metrics
