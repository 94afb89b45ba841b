"""nomade.Nomade's DataFrames (nomade.api_frames): jobs with scores and filters, a metric over a
window, alerts, similar jobs, profiles; and the CLI's privacy rule: a caller who is not root nor
an admin gets only their own jobs (simulated the way test_jobs_cli does, by replacing the one
``current_caller`` function)."""

import subprocess
import sys
import time

import pytest

pd = pytest.importorskip("pandas")

from nomade import api_frames  # noqa: E402
from nomade.api import Nomade  # noqa: E402
from nomade.collectors.base import Metric  # noqa: E402
from nomade.errors import AccessDenied, NomadeError  # noqa: E402
from nomade.jobrecord import JobRecord  # noqa: E402
from nomade.store import metrics as sm  # noqa: E402
from nomade.store.db import open_store  # noqa: E402
from nomade.store.jobs import upsert_jobs  # noqa: E402
from nomade.store.scores import Score, write_score  # noqa: E402
from nomade.whyservice.access import Caller  # noqa: E402

NOW = time.time()
NOBODY = 65534            # a uid with a passwd entry ("nobody") that is not an admin
OTHER = 4242              # a uid without one


def _job(job_id, user, uid, state, submit, **kw):
    return JobRecord("c1", job_id, job_id_raw=int(job_id), user=user, uid=uid, name=kw.pop("name", "sim"),
                     state=state, is_final=0 if state == "RUNNING" else 1, submit_time=submit,
                     partition=kw.pop("partition", "batch"), req_cpus=4, **kw)


@pytest.fixture()
def nm(tmp_path, monkeypatch):
    global NOW
    NOW = time.time()   # per test: an import-time clock goes stale in a long session (windows are relative)
    jobs = [_job("1", "nobody", NOBODY, "COMPLETED", NOW - 5 * 86400, elapsed_s=60),
            _job("2", "nobody", NOBODY, "FAILED", NOW - 3 * 86400, elapsed_s=30, exit_code=1),
            _job("3", "mallory", OTHER, "TIMEOUT", NOW - 2 * 86400, partition="gpu"),
            _job("4", "nobody", NOBODY, "RUNNING", NOW - 3600, name="sim\n\x1b[2J'; DROP"),
            _job("5", "mallory", OTHER, "COMPLETED", NOW - 60)]
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
        with store.transaction() as conn:
            write_score(conn, Score("c1", "4", "submit", "m1", 0.35, None, "[]", NOW - 3600))
            write_score(conn, Score("c1", "4", "start", "m1", 0.85, None, "[]", NOW - 3000))
            write_score(conn, Score("c1", "3", "submit", "m1", 0.7, None, "[]", NOW - 2 * 86400))
        for i in range(5):
            sm.write_cycle(store, "c1", "disk", [
                Metric.of("disk.used_bytes", 100 + i, mount="/scratch"),
                Metric.of("disk.used_bytes", 7, mount="/home"),
                Metric.of("quota.used_bytes", 1, mount="/home", kind="user", name="nobody"),
                Metric.of("quota.used_bytes", 2, mount="/home", kind="user", name="mallory")],
                NOW - 600 * (5 - i))
        sm.write_cycle(store, "c1", "disk", [Metric.of("disk.used_bytes", 1, mount="/scratch")],
                       NOW - 3 * 86400)
    n = Nomade(overrides={"data_dir": str(tmp_path)})
    yield n
    n.close()


def as_caller(monkeypatch, uid):
    monkeypatch.setattr(api_frames, "current_caller", lambda: Caller(uid=uid, gid=uid))


def test_importing_nomade_does_not_import_pandas():
    code = "import nomade, nomade.api, sys; assert 'pandas' not in sys.modules, 'pandas imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_admin_jobs_with_scores_and_filters(nm, monkeypatch):
    as_caller(monkeypatch, 0)
    df = nm.jobs()
    assert list(df["job_id"]) == ["5", "4", "3", "2", "1"]
    assert tuple(df.columns) == api_frames.JOB_COLUMNS + api_frames.SCORE_COLUMNS
    assert str(df["submit_time"].dtype) == "datetime64[ns, UTC]"
    four = df.set_index("job_id").loc["4"]
    assert (four["risk_submit"], four["risk_start"], four["risk"], four["level"]) == (0.35, 0.85, 0.85, "CRITICAL")
    assert four["name"] == "sim\n\x1b[2J'; DROP"                      # hostile text comes back as stored
    assert pd.isna(df.set_index("job_id").loc["1", "risk"])
    assert list(nm.jobs(user="mallory")["job_id"]) == ["5", "3"]
    assert list(nm.jobs(state="failed,timeout")["job_id"]) == ["3", "2"]
    assert list(nm.jobs(since="4d")["job_id"]) == ["5", "4", "3", "2"]
    assert list(nm.jobs(since=NOW - 2.5 * 86400, limit=2)["job_id"]) == ["5", "4"]
    assert nm.jobs(cluster="nope").empty and tuple(nm.jobs(cluster="nope").columns) == tuple(df.columns)
    with pytest.raises(NomadeError, match="unknown state"):
        nm.jobs(state="bogus")
    with pytest.raises(NomadeError, match="neither a relative time"):
        nm.jobs(since="yesterday-ish")


def test_non_admin_gets_only_their_own_jobs(nm, monkeypatch):
    as_caller(monkeypatch, NOBODY)
    assert sorted(nm.jobs()["job_id"]) == ["1", "2", "4"]
    assert set(nm.jobs()["user"]) == {"nobody"}
    assert list(nm.jobs(user="nobody", state="failed")["job_id"]) == ["2"]
    with pytest.raises(AccessDenied, match="only root and admins"):
        nm.jobs(user="mallory")
    as_caller(monkeypatch, OTHER)                                       # no passwd entry: by uid
    assert sorted(nm.jobs()["job_id"]) == ["3", "5"]


def test_metrics_frame_window_labels_and_privacy(nm, monkeypatch):
    as_caller(monkeypatch, 0)
    df = nm.metrics("disk.used_bytes", hours=1)
    assert tuple(df.columns)[:6] == api_frames.METRIC_COLUMNS and "mount" in df.columns
    scratch = df[df["mount"] == "/scratch"]
    assert list(scratch["value"]) == [100.0, 101.0, 102.0, 103.0, 104.0]  # the 3-day-old point is out
    assert len(nm.metrics("disk.used_bytes", hours=96, labels={"mount": "/scratch"})) == 6
    assert nm.metrics("no.such_metric").empty
    assert len(nm.metrics("disk.used_bytes", hours=0.25, until=NOW - 1700)) == 4   # /scratch and /home
    assert set(nm.metrics("quota.used_bytes")["name"]) == {"nobody", "mallory"}
    as_caller(monkeypatch, NOBODY)
    assert set(nm.metrics("quota.used_bytes")["name"]) == {"nobody"}      # not another user's quota
    assert len(nm.metrics("disk.used_bytes", hours=1)) == 10              # cluster-wide series stay


def test_alerts_of_ones_own_jobs_only(nm, monkeypatch):
    store_alerts = pytest.importorskip("nomade.store.alerts")
    rows = [{"fingerprint": f"fp{i}", "rule": "job_risk", "cluster": "c1", "severity": "warning",
             "state": "firing", "labels": {"job_id": str(i)}, "value": 0.9, "summary": "s",
             "description": "d", "owner": owner, "started_at": NOW - 60, "fired_at": NOW - 50,
             "resolved_at": None, "updated_at": NOW - 50}
            for i, owner in ((4, "nobody"), (5, "mallory"), (6, None))]
    store_alerts.save_pass(nm.store, rows, [], lambda ids: [])
    as_caller(monkeypatch, 0)
    df = nm.alerts()
    assert tuple(df.columns) == api_frames.ALERT_COLUMNS and len(df) == 3
    as_caller(monkeypatch, NOBODY)
    assert list(nm.alerts()["owner"]) == ["nobody"]
    as_caller(monkeypatch, OTHER)
    assert nm.alerts().empty


def test_similar_jobs_privacy_and_fallback(nm, monkeypatch):
    monkeypatch.setattr(api_frames, "_behaviour_modules", lambda: None)   # why's rule
    as_caller(monkeypatch, NOBODY)
    df = nm.similar_jobs("4", k=5)
    assert tuple(df.columns) == api_frames.SIMILAR_COLUMNS
    assert set(df["job_id"]) == {"1", "2"}                               # same owner, same partition
    with pytest.raises(AccessDenied):
        nm.similar_jobs("5")
    as_caller(monkeypatch, 0)
    assert list(nm.similar_jobs("5")["job_id"]) == ["3"]


def test_profiles_frame_has_its_columns(nm, monkeypatch):
    as_caller(monkeypatch, 0)
    df = nm.profiles()
    assert tuple(df.columns) == api_frames.PROFILE_COLUMNS


@pytest.mark.parametrize("bad", ["4\n5", "1;DROP TABLE jobs", "", str(2 ** 63), "4_\x1b[2J"])
def test_hostile_job_ids_are_one_clear_error(nm, monkeypatch, bad):
    as_caller(monkeypatch, 0)
    with pytest.raises(NomadeError, match="not a job id"):
        nm.similar_jobs(bad)
    if bad:                                   # an empty filter is no filter
        with pytest.raises(NomadeError, match="not a job id"):
            nm.jobs(job_id=[bad])


def test_hostile_metric_names_and_labels_just_match_nothing(nm, monkeypatch):
    as_caller(monkeypatch, 0)
    assert nm.metrics("disk.used_bytes' OR 1=1 --").empty
    assert nm.metrics("disk.used_bytes", labels={"mount\n": "/scratch\"; --"}).empty
    with pytest.raises(NomadeError, match="since"):
        nm.alerts(since=True)
