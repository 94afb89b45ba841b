"""Issue 13 item 8: a leakage test on a real trace that proves something.

A slice of a real SWF trace (LLNL Atlas 2006, shipped as package data; byte-identical to the
shared trace) is imported through nomade's SWF import twice:

* store A: the whole slice, every outcome as the trace records it;
* store B: the slice rebuilt as it was at a moment T - jobs submitted after T deleted, and for
  every job whose outcome was not known at T (nomade's rule: end time, or for traces without
  waits submit + runtime + model.assumed_wait_s, strictly before T) the outcome fields blanked in
  the SWF line itself (wait, runtime, allocated processors, average CPU, used memory, status,
  preceding job, think time = -1), so the import sees a job that has not ended.

For every job submitted before T the features as of its submit time must be identical in both
stores: the full submit matrix, the Lua model's lite rows, and the neural models' inputs (the
GNN's past-neighbour mean, the LSTM's sequence tensor). Then models retrained on what was known at
T (the jobs whose outcome was known before T, from either store) must predict identically for
every job submitted before T: the full GBDT, the calibrated Lua GBDT, and (torch, [train]) the
stacked ensemble of all five bases.

Allocated processors (SWF field 5) is outcome data once the trace records the request (field 8);
a trace that never records field 8 (CTC) has only field 5 as its record of the request, which is
what the import uses there.
"""

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from nomade.features.build import ASSUMED_WAIT_S, build_matrix
from nomade.features.jobtable import load_jobs
from nomade.features.labels import make_labels
from nomade.ingest.swf import import_swf
from nomade.scoring import lite_features as lite
from nomade.scoring.neighbours import neighbour_mean
from nomade.scoring.sequences import JobFields, from_rows
from nomade.store.db import open_store
from nomade.train.models.knn import SimilarityGraph, neighbour_labels
from nomade.train.requests import lite_requests

TRACE = "llnl-atlas-2006.swf.gz"
FIRST, N_JOBS = 12000, 3000   # the slice: job lines 12,001 - 15,000 of the trace
T_AT = 0.70   # T = the submit time of the job 70 % into the slice (254 labelled outcomes unknown at T)
OUTCOME_FIELDS = (2, 3, 5, 6, 10, 16, 17)   # 0-based: wait, run, avg CPU, used mem, status, 17, 18
WAIT, RUN, ALLOC, REQ_PROCS = 2, 3, 4, 7


def _trace_lines():
    path = resources.files("nomade").joinpath("data").joinpath("traces").joinpath(TRACE)
    with gzip.open(str(path), "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith(";")]
    jobs = [ln for ln in lines if ln.strip() and not ln.startswith(";")]
    return header, jobs[FIRST:FIRST + N_JOBS]


def _unix_start(header) -> int:
    return next(int(h.split(":")[1]) for h in header if h.startswith("; UnixStartTime"))


def _known_by(f, t0: int, T: float) -> bool:
    """Nomade's rule for when an SWF job's outcome is known (features.build.outcome_times)."""
    submit, wait, run = t0 + f[1], f[WAIT], f[RUN]
    if run < 0:
        return False
    end = submit + wait + run if wait >= 0 else submit + run + ASSUMED_WAIT_S
    return end < T


def rebuild_at(header, jobs, T: float):
    """The slice's SWF lines as they would have been written at time T."""
    t0 = _unix_start(header)
    out = []
    for line in jobs:
        f = [int(x) if x.lstrip("-").isdigit() else float(x) for x in line.split()]
        if t0 + f[1] > T:
            continue
        if not _known_by(f, t0, T):
            started = f[WAIT] >= 0 and t0 + f[1] + f[WAIT] < T
            for i in OUTCOME_FIELDS:
                if not (i == WAIT and started):
                    f[i] = -1
            if f[REQ_PROCS] >= 0 and not started:
                f[ALLOC] = -1
        out.append(" ".join(str(v) for v in f))
    return out


def _import(tmp: Path, name: str, header, jobs):
    swf = tmp / name / "atlas-slice.swf"
    swf.parent.mkdir()
    swf.write_text("\n".join(header + jobs) + "\n")
    with open_store(tmp / name / "nomade.db") as store:
        res = import_swf(store, swf)
        assert res.counts.quarantined == 0
        return load_jobs(store)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rebuild")
    header, jobs = _trace_lines()
    T = float(_unix_start(header) + int(jobs[int(N_JOBS * T_AT)].split()[1]))
    jt_a = _import(tmp, "A", header, jobs)
    jt_b = _import(tmp, "B", header, rebuild_at(header, jobs, T))
    return jt_a, jt_b, T


def _views(jt):
    fm = build_matrix(jt, "submit")
    y, _ = make_labels(jt)
    fm.meta["lite_X"], _ = lite.build_lite_rows(lite_requests(jt, y, fm.meta["assumed_wait_s"]), True)
    return fm


@pytest.fixture(scope="module")
def matrices(stores):
    jt_a, jt_b, T = stores
    fa, fb = _views(jt_a), _views(jt_b)
    before = np.flatnonzero(fa.submit_time < T)
    return fa, fb, before, T


def test_the_rebuild_really_hides_something(stores, matrices):
    """The test means something only if B differs from A: later jobs gone, outcomes blanked."""
    jt_a, jt_b, T = stores
    fa, fb, before, _ = matrices
    assert len(before) > 2000 and len(jt_b) < len(jt_a)
    np.testing.assert_array_equal(jt_a["job_id"][:len(jt_b)], jt_b["job_id"])
    unknown_at_t = (fa.y[before] >= 0) & ~(fa.outcome_time()[before] < T)
    assert unknown_at_t.sum() > 100, "some jobs submitted before T must end after it"
    assert np.all(fb.y[before][unknown_at_t] == -1)
    assert np.all(np.isnan(jt_b["elapsed_s"][before][unknown_at_t]))


def test_full_submit_features_identical(matrices):
    fa, fb, before, _ = matrices
    np.testing.assert_array_equal(fa.X[before], fb.X[before], err_msg="full submit features")


def test_lua_lite_features_identical(matrices):
    fa, fb, before, _ = matrices
    np.testing.assert_array_equal(fa.meta["lite_X"][before], fb.meta["lite_X"][before],
                                  err_msg="the Lua model's features")


def _known_rows(fm, T):
    return np.flatnonzero((fm.y >= 0) & (fm.outcome_time() < T))


def test_training_rows_known_at_t_identical(matrices):
    fa, fb, _, T = matrices
    ka, kb = _known_rows(fa, T), _known_rows(fb, T)
    np.testing.assert_array_equal(fa.job_id[ka], fb.job_id[kb])
    np.testing.assert_array_equal(fa.y[ka], fb.y[kb])


def test_neural_inputs_identical(matrices):
    """The GNN's neighbour mean (past-only kNN graph, scaler fitted on what was known at T) and
    the LSTM's sequence tensor, built with the numpy code the models and scoring share."""
    fa, fb, before, T = matrices
    graph = SimilarityGraph().fit_scaler(fa.X[_known_rows(fa, T)], fa.categorical_columns())
    nbr = []
    seq = []
    for fm in (fa, fb):
        Z = graph.z(fm.X)
        idx, valid = graph.neighbours_in(fm, before, Z)
        src = np.concatenate([Z, neighbour_labels(fm)[:, None]], axis=1)
        nbr.append(neighbour_mean(idx, valid, src[:, :-1], src[:, -1]))
        fields = JobFields.of_matrix(fm.X, fm.names, fm.cls, fm.start_time, fm.end_time,
                                     fm.outcome_time())
        seq.append(from_rows(fields, fm.history_idx[before], fm.submit_time[before]))
    assert np.isfinite(nbr[0]).all() and (nbr[0][:, -1] != 0).any()
    np.testing.assert_array_equal(nbr[0], nbr[1], err_msg="GNN neighbour mean")
    assert seq[0][:, :, -1].sum() > 0
    np.testing.assert_array_equal(seq[0], seq[1], err_msg="LSTM sequence tensor")


def _retrained(fm, T, make):
    from nomade.train.ensemble import subset

    return make().fit(subset(fm, _known_rows(fm, T)), 7)


@pytest.mark.train
def test_tree_models_retrained_at_t_predict_identically(matrices):
    pytest.importorskip("lightgbm")
    pytest.importorskip("sklearn")
    from nomade.train.ensemble import subset
    from nomade.train.lite_model import LiteGBDT
    from nomade.train.models.gbdt import GBDTModel

    fa, fb, before, T = matrices
    makers = {"gbdt": lambda: GBDTModel(rounds=40, params={"num_threads": 1}),
              "gbdt_lite": lambda: LiteGBDT(lite.lite_names(True), rounds=40, threads=1)}
    for name, make in makers.items():
        pa = _retrained(fa, T, make).predict(subset(fa, before))
        pb = _retrained(fb, T, make).predict(subset(fb, before))
        assert np.std(pa) > 0, name
        np.testing.assert_array_equal(pa, pb, err_msg=name)


@pytest.mark.train
def test_stacked_ensemble_of_all_bases_retrained_at_t_predicts_identically(matrices):
    pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from nomade.train.ensemble import StackedEnsemble, subset
    from nomade.train.lite_model import LiteGBDT
    from nomade.train.models.autoencoder import Autoencoder
    from nomade.train.models.gbdt import GBDTModel
    from nomade.train.models.gnn import SimilarityGNN
    from nomade.train.models.lstm import SequenceLSTM

    def make():
        return StackedEnsemble({
            "gbdt": GBDTModel(rounds=30, params={"num_threads": 1}),
            "lite": LiteGBDT(lite.lite_names(True), rounds=30, threads=1, calibrated=False),
            "gnn": SimilarityGNN(hidden=16, epochs=2), "lstm": SequenceLSTM(hidden=8, epochs=2),
            "autoencoder": Autoencoder(hidden=16, epochs=2)}, refit_bases=False)
    fa, fb, before, T = matrices
    ea, eb = _retrained(fa, T, make), _retrained(fb, T, make)
    assert list(ea.bases) == list(eb.bases) == ["gbdt", "lite", "gnn", "lstm", "autoencoder"]
    oa, ob = ea.base_outputs(subset(fa, before)), eb.base_outputs(subset(fb, before))
    for name in oa:
        np.testing.assert_array_equal(oa[name], ob[name], err_msg=name)
    np.testing.assert_array_equal(ea.combine(oa), eb.combine(ob), err_msg="ensemble")
