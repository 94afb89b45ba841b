"""In-run early warning: memory projection per job, an optional series scorer, and a
notification command that fires at most once per job.

``SeriesScorer`` is the hook for the Prediction issue's LSTM: any callable that takes the job's
samples on this node (oldest first) and returns a risk in 0..1 (or None when it cannot score).
"""

import collections
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from ..command import run_command
from ..errors import SlurmCommandError
from ..private_files import make_private_dirs, open_private
from ..risk_scale import DEFAULT_ALERT
from .projection import project
from .sample import JobSample

SeriesScorer = Callable[[Sequence[JobSample]], Optional[float]]
MEMORY_KIND = "memory_projection"
SERIES_KIND = "series_risk"


@dataclass
class WarningEvent:
    cluster: str
    job_id: str
    node: str
    kind: str
    created_at: float
    detail: Dict[str, Any]
    notified: bool = False

    def to_record(self) -> Dict[str, Any]:
        return {"v": 1, "type": "event", "cluster": self.cluster, "job_id": self.job_id,
                "node": self.node, "kind": self.kind, "created_at": self.created_at,
                "detail": self.detail, "notified": self.notified}


@dataclass
class WarningPolicy:
    threshold_s: float = 900.0        # warn when projected time to the limit is below this
    window: int = 8                   # samples in the smoothing window
    min_points: int = 4
    min_growth_fraction: float = 0.01  # the window must grow by > 1% of the limit
    history: int = 64                 # samples kept per job for the series scorer
    series_threshold: float = DEFAULT_ALERT   # the one risk scale's default alert (nomade.risk_scale)


class EarlyWarning:
    def __init__(self, policy: Optional[WarningPolicy] = None, series_scorer: Optional[SeriesScorer] = None):
        self.policy = policy or WarningPolicy()
        self.series_scorer = series_scorer
        self._series: Dict[Tuple[str, str], Deque[JobSample]] = {}
        self._raised: Dict[Tuple[str, str], set] = {}

    def observe(self, samples: List[JobSample]) -> List[WarningEvent]:
        """Feed one sampling pass; returns the events raised now (each kind once per job)."""
        live = {(s.job_id, s.node) for s in samples}
        for gone in [j for j in self._series if j not in live]:
            del self._series[gone]
            self._raised.pop(gone, None)
        events = []
        for s in samples:
            key = (s.job_id, s.node)
            dq = self._series.setdefault(key, collections.deque(maxlen=self.policy.history))
            dq.append(s)
            raised = self._raised.setdefault(key, set())
            for ev in (self._memory_event(s, dq), self._series_event(s, dq)):
                if ev is not None and ev.kind not in raised:
                    raised.add(ev.kind)
                    events.append(ev)
        return events

    def _memory_event(self, s: JobSample, dq: Deque[JobSample]) -> Optional[WarningEvent]:
        limit = s.cg_mem_limit_mb
        if not limit:
            return None
        pts = [(x.ts, x.memory_mb) for x in dq if x.memory_mb is not None and x.cg_mem_limit_mb == limit]
        p = project(pts, limit, self.policy.window, self.policy.min_points,
                    self.policy.min_growth_fraction * limit)
        if p is None or not p.consistent or p.ttl_s is None or p.ttl_s > self.policy.threshold_s:
            return None
        detail = p.as_dict()
        detail["message"] = (f"job {s.job_id} on {s.node}: memory {p.value:.0f} of {limit:.0f} MiB, "
                             f"growing {p.rate * 60:.1f} MiB/min; projected to hit the limit in "
                             f"about {_human(p.ttl_s)}")
        return WarningEvent(s.cluster, s.job_id, s.node, MEMORY_KIND, s.ts, detail)

    def _series_event(self, s: JobSample, dq: Deque[JobSample]) -> Optional[WarningEvent]:
        if self.series_scorer is None:
            return None
        risk = self.series_scorer(list(dq))
        if risk is None or risk < self.policy.series_threshold:
            return None
        return WarningEvent(s.cluster, s.job_id, s.node, SERIES_KIND, s.ts,
                            {"risk": round(float(risk), 4), "samples": len(dq),
                             "message": f"job {s.job_id} on {s.node}: its resource series looks like "
                                        f"failing jobs' (risk {risk:.2f})"})


class Notifier:
    """Runs ``recorder.notify_command`` (split like a shell would, no shell) with the job id, the
    kind and the message appended, at most once per job (marker files survive restarts)."""

    def __init__(self, command: str, state_dir: Path, timeout_s: float = 10.0):
        self.argv = shlex.split(command) if command else []
        self.state_dir = Path(state_dir)
        self.timeout_s = timeout_s

    def notify(self, ev: WarningEvent) -> None:
        if not self.argv:
            return
        marker = self.state_dir / "notified" / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{ev.cluster}_{ev.job_id}")
        if marker.exists():
            return
        try:
            run_command(self.argv + [ev.job_id, ev.kind, str(ev.detail.get("message", ""))],
                        timeout=self.timeout_s)
            ev.notified = True
        except SlurmCommandError as exc:
            ev.detail["notify_error"] = str(exc)
        try:
            make_private_dirs(marker.parent)
            os.close(open_private(marker, os.O_WRONLY))
        except OSError as exc:
            ev.detail["notify_marker_error"] = exc.strerror or str(exc)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"
