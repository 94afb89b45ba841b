"""Benchmark: `import swf` of a trace into a fresh store, then again (all unchanged).

    python bench/swf_import.py /work/shared/data/traces/llnl-thunder-2007/LLNL-Thunder-2007-1.1-cln.swf.gz

Prints wall and CPU seconds and jobs per second for each pass. Not a test.
"""

import sys
import tempfile
import time
from pathlib import Path

from nomade.ingest.swf import import_swf
from nomade.store import open_store


def main(trace: str, batch_size: int = 5000) -> None:
    with tempfile.TemporaryDirectory(prefix="nomade-bench-") as tmp:
        with open_store(Path(tmp) / "nomade.db") as store:
            for label in ("first import", "re-import"):
                wall, cpu = time.perf_counter(), time.process_time()
                res = import_swf(store, trace, batch_size=batch_size)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"{label:<13} {res.summary()}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                      f"{res.lines / wall:,.0f} jobs/s")
        size = (Path(tmp) / "nomade.db").stat().st_size
        print(f"store size: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
