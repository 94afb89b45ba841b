"""``nomade init``: a commented configuration for this machine, from what is here: the
cluster's name (``scontrol show config``), the real filesystems mounted (``/proc/mounts``),
FlexLM servers named by ``LM_LICENSE_FILE``, and which collectors can run (``monitor.syscheck``:
a collector that cannot run here is written disabled, with the reason). The template is package
data (``data/init_config.toml.in``)."""

import os
import re
import socket
import time
from importlib import resources
from string import Template
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .command import run_command
from .errors import NomadeError, SlurmCommandError

REAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "nfs", "nfs4", "lustre", "gpfs", "beegfs",
           "cephfs", "ceph", "panfs", "wekafs", "f2fs", "jfs"}
SKIP_PREFIXES = ("/proc", "/sys", "/dev", "/run", "/boot", "/snap", "/var/lib/docker", "/var/lib/containers")
_CLUSTER = re.compile(r"^ClusterName\s*=\s*([A-Za-z0-9_.-]{1,64})\s*$", re.M)
_PORT_HOST = re.compile(r"^[0-9]{1,5}@[A-Za-z0-9_.-]{1,253}$")


def cluster_name(run: Callable[..., Any] = run_command, scontrol: str = "scontrol") -> Tuple[str, str]:
    """(name, where it came from); ("", why not) when Slurm cannot tell."""
    try:
        out = run([scontrol, "show", "config"], timeout=10.0)
    except (SlurmCommandError, NomadeError) as exc:
        return "", f"not found: {str(exc).splitlines()[0][:120]}"
    m = _CLUSTER.search(out.stdout)
    return (m.group(1), "from scontrol show config") if m else ("", "scontrol show config names none")


def real_mounts(text: str) -> List[str]:
    """Mount points of real (disk or network) filesystems in ``/proc/mounts`` text, "/" first;
    a mount point with an escape or a control character is left out (\\040 is a space)."""
    out: List[str] = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 3 or parts[2] not in REAL_FS:
            continue
        mount = parts[1]
        if "\\" in mount or not mount.isprintable() or mount.startswith(SKIP_PREFIXES) or mount in out:
            continue
        out.append(mount)
    return sorted(out, key=lambda m: (m != "/", m))


def flexlm_servers(environ: Dict[str, str]) -> List[str]:
    """port@host entries of LM_LICENSE_FILE (files in it are left out)."""
    raw = environ.get("LM_LICENSE_FILE", "")
    return [x for x in re.split(r"[:;]", raw) if _PORT_HOST.match(x)]


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_toml_str(x) for x in items) + "]"


def collector_blocks(lines, extra: Dict[str, Dict[str, str]]) -> str:
    """One ``[collectors.<name>]`` table per probed collector: enabled when it ran here, else
    disabled with the reason as a comment; ``extra`` adds TOML values (already formatted)."""
    out = []
    for c in lines:
        out.append(f"[collectors.{c.name}]")
        if c.state == "ok":
            out.append("enabled = true")
        else:
            reason = " ".join(str(c.message or c.state).split())[:200]
            out.append(f"# {c.state} on this host: {reason}" + (f" (needs: {c.needs})" if c.needs else ""))
            out.append("enabled = false")
        for key, value in extra.get(c.name, {}).items():
            out.append(f"{key} = {value}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render(cfg, found, *, run: Callable[..., Any] = run_command, mounts_text: str = "",
           environ: Optional[Dict[str, str]] = None, now: Optional[float] = None) -> str:
    """The config text for this machine."""
    from .monitor import syscheck
    environ = dict(os.environ) if environ is None else environ
    name, source = cluster_name(run, cfg.get("slurm.scontrol"))
    mounts = real_mounts(mounts_text) or ["/"]
    extra: Dict[str, Dict[str, str]] = {"disk": {"filesystems": _toml_list(mounts)}}
    servers = flexlm_servers(environ)
    if servers:
        extra["licenses"] = {"flexlm": _toml_list(servers)}
    lines = syscheck(cfg, found, run=run)
    text = resources.files("nomade").joinpath("data/init_config.toml.in").read_text(encoding="utf-8")
    return Template(text).substitute(
        host=socket.gethostname().split(".")[0], cluster=name.replace('"', ""), cluster_source=source,
        date=time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now)),
        collectors=collector_blocks(lines, extra))
