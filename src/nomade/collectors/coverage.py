"""Recorder coverage: the share of recently ended jobs that have recorder samples (the design's
"> 80 % of jobs have metrics"), from the store's jobs and job_summaries tables
(``nomade.store.recorder.recorder_coverage``). Jobs come from `nomade ingest sacct`, samples
from `nomade ingest spool`; a job that ran shorter than ``min_runtime_s`` (the recorder may not
have sampled it) is not counted. The ratio is given only when at least ``min_jobs`` jobs ended
in the window: a handful of jobs says little.
"""

from typing import Any, Dict, List

from .base import CollectContext, Collector, Metric, register

DEFAULTS: Dict[str, Any] = {"window_h": 24.0, "min_jobs": 20, "min_runtime_s": 60.0}


@register
class CoverageCollector(Collector):
    name = "coverage"
    help = "Share of the jobs that ended in the last window_h hours that have recorder samples"
    interval_s = 900.0
    needs = "the store's jobs (`nomade ingest sacct`) and recorder samples (`nomade ingest spool`)"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        if ctx.store is None:          # `nomade syscheck` probes without a store: nothing to read
            return []
        from ..store.recorder import recorder_coverage
        settings = {**DEFAULTS, **dict(ctx.settings)}
        now = ctx.now()
        ended, recorded = recorder_coverage(ctx.store, ctx.cluster,
                                            now - float(settings["window_h"]) * 3600.0, now,
                                            float(settings["min_runtime_s"]))
        return coverage_metrics(ended, recorded, int(settings["min_jobs"]))


def coverage_metrics(ended: int, recorded: int, min_jobs: int) -> List[Metric]:
    """Cluster-wide counts, and the ratio when at least ``min_jobs`` (and at least one) ended."""
    out = [Metric.of("recorder.coverage_jobs_ended", ended),
           Metric.of("recorder.coverage_jobs_recorded", recorded)]
    if ended >= max(1, min_jobs):
        out.append(Metric.of("recorder.coverage_ratio", recorded / ended))
    return out
