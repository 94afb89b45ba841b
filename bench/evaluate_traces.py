"""Benchmark (not a test): import each shared SWF trace into a temporary data dir and run
`nomade evaluate --json` on it; print one Markdown table per trace (the tables of
docs/evaluation.md).

    python bench/evaluate_traces.py [--traces ctc-sp2-1996,llnl-atlas-2006,llnl-thunder-2007]
                                    [--models gbdt,gnn,lstm,autoencoder] [--folds 4] [--stage submit]
                                    [--assumed-wait 0,86400,259200]

``--assumed-wait``: one evaluation per value of model.assumed_wait_s (seconds), for the
sensitivity table of docs/evaluation.md (jobs of traces without wait times count as known at
submit + runtime + this).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from nomade.command import run_command

from trace_jobs import DEFAULT, TRACES


def nomade(data_dir: Path, *args: str, timeout: float = 3600, env=None) -> str:
    argv = [str(Path(sys.executable).with_name("nomade")), "--data-dir", str(data_dir), *args]
    return run_command(argv, timeout=timeout, env=env).stdout


def table(name: str, res: dict, seconds: float) -> str:
    lines = [f"### {name}", "",
             f"{res['n_jobs']} jobs, stage {res['stage']}, {len(res['folds'])} folds, "
             f"{next(iter(res['metrics'].values()))['n_test']} pooled test jobs, "
             f"ensemble mode {res['ensemble'].get('mode')} / calibration "
             f"{res['ensemble'].get('calibration')}; evaluate took {seconds:.0f} s", "",
             "| model | ROC-AUC | PR-AUC | ECE | Brier | precision | recall |",
             "|---|---|---|---|---|---|---|"]
    for m, d in res["metrics"].items():
        lines.append(f"| {m} | {d['roc_auc']:.3f} | {d['pr_auc']:.3f} | {d['ece']:.3f} | "
                     f"{d['brier']:.3f} | {d['precision']:.3f} | {d['recall']:.3f} |")
    folds = " ".join(f"{f['metrics']['ensemble']['pr_auc']:.3f}" for f in res["folds"])
    lines += ["", f"Ensemble PR-AUC per fold: {folds}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=DEFAULT)
    ap.add_argument("--models", default="")
    ap.add_argument("--folds", default="4")
    ap.add_argument("--stage", default="submit")
    ap.add_argument("--keep", default="", help="reuse/keep data dirs under this directory")
    ap.add_argument("--assumed-wait", default="", help="comma-separated model.assumed_wait_s values")
    a = ap.parse_args()
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nomade-eval-"))
    for name in a.traces.split(","):
        data = root / name
        if not (data / "nomade.db").exists():
            swf = next((TRACES / name).glob("*.swf.gz"))
            nomade(data, "import", "swf", str(swf))
        args = ["evaluate", "--json", "--folds", a.folds, "--stage", a.stage]
        if a.models:
            args += ["--models", a.models]
        for wait in (a.assumed_wait.split(",") if a.assumed_wait else [None]):
            env = None if wait is None else dict(os.environ, NOMADE_MODEL_ASSUMED_WAIT_S=wait)
            t0 = time.time()
            res = json.loads(nomade(data, *args, env=env))
            title = name if wait is None else f"{name}, model.assumed_wait_s = {wait}"
            print(table(title, res, time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
