"""A non-editable install (what the README's demo command does) carries everything the runtime
looks for outside the Python modules: the demo trace, the migrations, the cold-start bundle, and
the files `nomade install-slurm` installs."""

import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "-q", "-w", str(out), "."], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [whl] = list(out.glob("nomade-*.whl"))
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


@pytest.mark.parametrize("suffix", [
    "nomade/data/traces/llnl-atlas-2006.swf.gz",
    "nomade/data/traces/ATTRIBUTION.txt",
    "nomade/store/migrations/0001_initial.sql",
    "data/share/nomade/models/default/manifest.json",
    "data/share/nomade/models/default/submit_model.lua",
    "data/share/nomade/lua/job_submit.lua",
    "data/share/nomade/slurm_plugins/prolog",
    "data/share/nomade/slurm_plugins/systemd/nomade-train.timer",
    "data/share/nomade/slurm_plugins/systemd/nomade-why.service",
    "data/share/nomade/slurm_plugins/systemd/nomade-ingest-sacct.service",
    "data/share/nomade/slurm_plugins/systemd/nomade-ingest-sacct.timer",
])
def test_wheel_carries(wheel_names, suffix):
    assert any(n.endswith(suffix) for n in wheel_names), suffix
