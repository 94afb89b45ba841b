"""``nomade demo``: import the bundled real trace into a fresh data directory and summarize it.

``run_demo(data_dir, out)`` is the boundary later steps hook into (training and evaluating a model
on the imported jobs): each step adds its results to the ``DemoSummary`` it returns.
"""

import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Optional

from .errors import StoreError
from .ingest.swf import SwfImportResult, import_swf
from .jobs_query import OutcomeCounts, outcome_counts
from .store.db import open_store
from .store.job_queries import has_jobs

BUNDLED_TRACE = "llnl-atlas-2006.swf.gz"
ATTRIBUTION = ("LLNL Atlas log (Moe Jette, LLNL), from the Parallel Workloads Archive "
               "(Feitelson, Tsafrir & Krakov, JPDC 74(10) 2014)")
STORE_FILE = "nomade.db"


@dataclass
class DemoSummary:
    data_dir: Path
    store_path: Path
    trace: SwfImportResult
    outcomes: OutcomeCounts
    seconds: float = 0.0
    extra: Dict[str, object] = field(default_factory=dict)  # results of later demo steps

    def as_dict(self) -> Dict[str, object]:
        return {
            "data_dir": str(self.data_dir),
            "store": str(self.store_path),
            "trace": self.trace.as_dict(),
            "jobs": self.outcomes.jobs,
            "users": self.outcomes.users,
            "first_submit": self.outcomes.first_submit,
            "last_submit": self.outcomes.last_submit,
            "outcomes": dict(self.outcomes.by_class),
            "seconds": round(self.seconds, 2),
            **self.extra,
        }


def bundled_trace_path() -> Path:
    """The SWF trace shipped inside the package (see data/traces/ATTRIBUTION.txt)."""
    # a plain directory install (wheel, editable): the resource is a real file
    path = Path(str(resources.files("nomade").joinpath("data").joinpath("traces").joinpath(BUNDLED_TRACE)))
    if not path.is_file():
        raise StoreError(f"bundled trace {BUNDLED_TRACE} is missing from the nomade package",
                         hint="reinstall nomade; the wheel must include nomade/data/traces")
    return path


def prepare_data_dir(data_dir: Optional[Path], force: bool = False) -> Path:
    """The demo's data directory: ``data_dir`` if given (refused if it already holds a store with
    jobs, unless ``force``), else a new temporary directory."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="nomade-demo-"))
    data_dir = Path(data_dir).expanduser()
    store_path = data_dir / STORE_FILE
    if store_path.exists() and not force and _has_jobs(store_path):
        raise StoreError(f"{store_path} already holds jobs; the demo wants a fresh store",
                         hint="pass --force to import into it anyway, or leave out --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _has_jobs(store_path: Path) -> bool:
    with open_store(store_path, migrate=False, readonly=True) as store:
        if not store.schema_status()[0]:
            return False
        return has_jobs(store)


def run_demo(data_dir: Path, out: Optional[Callable[[str], None]] = None,
             batch_size: int = 5000, train: bool = True,
             keep: Optional[Callable[..., bool]] = None) -> DemoSummary:
    """Import the bundled trace into ``data_dir``/nomade.db and summarize it; with ``train``, also
    run the prediction steps (needs the [train] extra). ``out(line)`` receives progress lines
    (the CLI prints them; library code does not). ``keep(record)`` False holds a job back
    (``demo_replay.ReplayPlan.imported``: the live replay writes it later)."""
    say = out or (lambda line: None)
    started = time.monotonic()
    data_dir = Path(data_dir)
    store_path = data_dir / STORE_FILE
    trace = bundled_trace_path()
    say(f"importing {trace.name} ({ATTRIBUTION}) ...")
    with open_store(store_path) as store:
        result = import_swf(store, trace, batch_size=batch_size, keep=keep)
        say(result.summary())
        outcomes = outcome_counts(store, cluster=result.cluster)
    summary = DemoSummary(data_dir=data_dir, store_path=store_path, trace=result, outcomes=outcomes)
    summary.seconds = time.monotonic() - started
    if train:
        train_step(summary, say)
    return summary


def train_step(summary: DemoSummary, out: Optional[Callable[[str], None]] = None) -> DemoSummary:
    """The prediction part of the demo: train and evaluate on the imported trace, publish the
    bundle (nomade.train.pipeline.demo_step); adds ``model`` to the summary."""
    from .train.pipeline import demo_step

    started = time.monotonic()
    summary.extra["model"] = demo_step(summary.data_dir, out)
    summary.seconds += time.monotonic() - started
    return summary
