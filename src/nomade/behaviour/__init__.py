"""Job behaviour analysis (docs/behaviour.md): behaviour vectors of ended jobs, their similarity
network with failure hotspots, job profiles, recommendations and drift. Runtime code: stdlib and
numpy only, Python 3.9."""

import os
import sys

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """One BLAS thread per Python thread, for a command that runs the analysis: its neighbour
    search runs its own threads, and the many small products of the profiles' mixture fit lose
    to a multi-threaded BLAS's waiting on a busy machine (20x at 100k jobs under load). Only
    before numpy is imported (the BLAS reads it once), and never over a value the caller set."""
    if "numpy" in sys.modules:
        return
    for name in BLAS_ENV:
        os.environ.setdefault(name, "1")
