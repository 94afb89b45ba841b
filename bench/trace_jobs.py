"""Shared by the benchmarks: the shared SWF traces, imported once into a store under a root
directory (reused when it already holds jobs), as a JobTable."""

from pathlib import Path

TRACES = Path("/work/shared/data/traces")
DEFAULT = "ctc-sp2-1996,llnl-atlas-2006,llnl-thunder-2007"


def trace_jobs(name: str, root: Path):
    from nomade.features.jobtable import load_jobs
    from nomade.ingest.swf import import_swf
    from nomade.store.db import open_store

    db = Path(root) / name / "nomade.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    with open_store(db) as store:
        if store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0:
            import_swf(store, next((TRACES / name).glob("*.swf.gz")))
        return load_jobs(store)
