"""Top-level pytest configuration.

- ``slurm_cluster`` (session): the real cluster of tests/slurm/cluster.sh. Skips, with the reason,
  when not root or when Slurm cannot be installed/started; with NOMADE_SLURM_READY=1 (set by
  tests/run.sh) it only checks `scontrol ping`, else it runs `cluster.sh up` once.
- ``nomade_data_dir``: a fresh nomade data dir per test, also exported as NOMADE_DATA_DIR.
- Skipped tests marked ``slurm`` are appended to $NOMADE_TEST_REPORT_DIR/skipped_slurm.txt, so
  tests/run.sh can fail a CI run in which the real-cluster tests did not really run.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (tests/slurm/harness.py)
from pg_fixture import pg_server, pg_url, store_target  # noqa: E402,F401  (PostgreSQL: tests/pg_fixture.py)


@pytest.fixture(scope="session")
def slurm_cluster() -> "harness.SlurmCluster":
    try:
        return harness.ensure_cluster()
    except harness.ClusterUnavailable as exc:
        pytest.skip(f"real Slurm cluster unavailable: {exc}")


@pytest.fixture
def nomade_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "nomade-data"
    data.mkdir()
    monkeypatch.setenv("NOMADE_DATA_DIR", str(data))
    return data


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.skipped or "slurm" not in report.keywords:
        return
    out_dir = os.environ.get("NOMADE_TEST_REPORT_DIR")
    if not out_dir:
        return
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    with open(os.path.join(out_dir, "skipped_slurm.txt"), "a", encoding="utf-8") as fh:
        fh.write(f"{report.nodeid}\t{reason}\n")
