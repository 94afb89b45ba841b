"""Build the default bundle shipped in ``models/default``: the lite GBDT on site-independent
features only (request shape and UTC calendar; no user history - users differ per site),
trained on public SWF traces. Scoring falls back to it until a site has its own bundle.

    python -m nomade.train.default_bundle OUT_DIR TRACE.swf.gz [TRACE.swf.gz ...]

Traces are imported into a temporary store; rows are ordered by submit time across traces, so
the evaluation window is the newest trace's last jobs (train on older, test on newer)."""

import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from ..config import load_config
from ..ingest.swf import import_swf
from ..store.db import open_store
from .pipeline import TrainResult, train_bundle

VERSION = "default"


def build_default_bundle(out_dir: Path, traces: List[str], log=None, rounds: Optional[int] = None) -> TrainResult:
    """Write the default bundle to ``out_dir`` (replaced if it exists)."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="nomade-default-") as tmp:
        store = open_store(Path(tmp) / "nomade.db")
        for t in traces:
            res = import_swf(store, t)
            if log:
                log(f"imported {t}: {res}")
        cfg = load_config(None, {"data_dir": tmp})
        kw = {} if rounds is None else {"rounds": rounds}
        res = train_bundle(store, cfg, Path(tmp) / "registry", with_history=False,
                           use_full_features=False, version=VERSION, log=log, **kw)
        store.close()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(res.path, out_dir)
        res.path = out_dir
    return res


def main(argv: List[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    res = build_default_bundle(Path(argv[0]), argv[1:], log=lambda m: sys.stderr.write(m + "\n"))
    for name, met in res.manifest["metrics"].items():
        sys.stdout.write(f"{name}: PR-AUC {met['pr_auc']:.3f} ROC-AUC {met['roc_auc']:.3f} "
                         f"ECE {met['ece']:.3f} positive rate {met['positive_rate']:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
