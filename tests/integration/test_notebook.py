"""The example notebook (docs/notebooks/nomade_api.ipynb) runs from top to bottom in a real
Jupyter kernel (nbclient, kernel python3 = this venv's ipykernel) against a store built here and
handed over through $NOMADE_DATA_DIR; its frames hold that store's jobs and metrics."""

import os
import pwd
import time
from pathlib import Path

import pytest

from nomade.collectors.base import Metric
from nomade.jobrecord import JobRecord
from nomade.store import metrics as sm
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "nomade_api.ipynb"
STATES = ("COMPLETED", "FAILED", "TIMEOUT", "COMPLETED", "OUT_OF_MEMORY", "RUNNING")


def _needs(module: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is missing; CI installs the dev extra")
        pytest.skip(f"{module} is not installed (pip install -e '.[dev,web]')")


def build_store(data_dir: Path, now: float) -> None:
    """Jobs of the user running the test (a non-admin sees their own) and a day of disk samples."""
    uid = os.getuid()
    user = pwd.getpwuid(uid).pw_name
    jobs = [JobRecord("nb", str(i), job_id_raw=i, user=user, uid=uid, name=f"job{i}",
                      partition="gpu" if i % 3 == 0 else "batch", state=STATES[i % len(STATES)],
                      is_final=0 if STATES[i % len(STATES)] == "RUNNING" else 1,
                      submit_time=now - 3600 * (60 - i), elapsed_s=60 * i)
            for i in range(1, 60)]
    with open_store(data_dir / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
        for h in range(24):
            sm.write_cycle(store, "nb", "disk", [Metric.of("disk.used_bytes", 1e9 + h * 1e6, mount="/scratch")],
                           now - 3600 * (24 - h))


def test_the_example_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")          # jupyter_core's future paths, no warning
    nbformat = _needs("nbformat")
    nbclient = _needs("nbclient")
    _needs("ipykernel")
    _needs("pandas")
    data = tmp_path / "data"
    data.mkdir()
    build_store(data, time.time())
    monkeypatch.setenv("NOMADE_DATA_DIR", str(data))
    monkeypatch.delenv("NOMADE_CONFIG", raising=False)
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    started = time.monotonic()
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.monotonic() - started < 60
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                          for o in c.get("outputs", [])) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert str(data) in text                                  # the store from $NOMADE_DATA_DIR
    assert "failure_rate" in text and "batch" in text and "gpu" in text
    assert "/scratch" in text                                 # the metric's pivot has the mount
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
