"""``JobSample``: what the recorder measures for one job on one node at one time.

Field names match the store's ``samples`` table; everything else goes into ``extra``.
Byte counters are cumulative since the recorder first saw the job on this node.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

SCHEMA_VERSION = 1
SAMPLE_COLUMNS = ("cpu_time_s", "cpu_eff", "rss_mb", "cg_mem_mb", "cg_mem_limit_mb", "read_bytes",
                  "write_bytes", "write_local_bytes", "write_network_bytes", "gpu_util", "gpu_mem_mb")


@dataclass
class JobSample:
    job_id: str
    node: str
    ts: float                          # wall clock (epoch s), never going backwards per job
    cluster: str = ""
    cpu_time_s: Optional[float] = None
    cpu_eff: Optional[float] = None    # over the interval since the previous sample
    rss_mb: Optional[float] = None
    cg_mem_mb: Optional[float] = None
    cg_mem_limit_mb: Optional[float] = None
    read_bytes: Optional[int] = None   # rchar
    write_bytes: Optional[int] = None  # wchar
    write_local_bytes: Optional[int] = None
    write_network_bytes: Optional[int] = None
    gpu_util: Optional[float] = None
    gpu_mem_mb: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_record(self, seq: int) -> Dict[str, Any]:
        rec = {"v": SCHEMA_VERSION, "type": "sample", "seq": seq}
        rec.update(asdict(self))
        return rec

    @classmethod
    def from_record(cls, rec: Dict[str, Any]) -> "JobSample":
        keys = ("job_id", "node", "ts", "cluster") + SAMPLE_COLUMNS + ("extra",)
        return cls(**{k: rec[k] for k in keys if k in rec})

    @property
    def memory_mb(self) -> Optional[float]:
        """The memory the early warning projects: the cgroup working set when known
        (usage minus reclaimable inactive file cache), else cgroup usage, else the RSS sum."""
        ws = self.extra.get("cg_ws_mb")
        if ws is not None:
            return ws
        return self.cg_mem_mb if self.cg_mem_mb is not None else self.rss_mb
