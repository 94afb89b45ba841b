"""`nomade jobs` and the library under it (nomade.jobs_query)."""

import grp
import json
import os
import pwd

import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.cli import jobs_cmd
from nomade.cli.main import cli, run_cli
from nomade.jobrecord import JobRecord
from nomade.jobs_query import JobQuery, list_jobs, outcome_counts, parse_since, state_condition
from nomade.store import open_store
from nomade.store.jobs import upsert_jobs
from nomade.whyservice.access import Caller

DAY = 86400.0
T0 = 1714521600.0  # 2024-05-01 00:00 UTC


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


def _job(job_id, user, state, submit, uid=1000, cancelled_by=None, cluster="c1", **kw):
    final = 0 if state in (None, "RUNNING", "PENDING") else 1
    return JobRecord(cluster, job_id, job_id_raw=int(job_id), user=user, uid=uid, name=f"n{job_id}",
                     state=state, is_final=final, cancelled_by=cancelled_by, submit_time=submit, **kw)


@pytest.fixture
def data_dir(tmp_path):
    jobs = [
        _job("1", "alice", "COMPLETED", T0, elapsed_s=3661, exit_code=0, exit_signal=0),
        _job("2", "alice", "FAILED", T0 + DAY, elapsed_s=90061, exit_code=2, exit_signal=0),
        _job("3", "bob", "TIMEOUT", T0 + 2 * DAY, uid=1001),
        _job("4", "bob", "CANCELLED", T0 + 3 * DAY, uid=1001, cancelled_by=1001),
        _job("5", "bob", "CANCELLED", T0 + 4 * DAY, uid=1001, cancelled_by=0),
        _job("6", "carol", "OUT_OF_MEMORY", T0 + 5 * DAY, uid=1002),
        _job("7", "carol", "RUNNING", T0 + 6 * DAY, uid=1002),
        _job("8", "alice", "NODE_FAIL", T0 + 7 * DAY, cluster="c2"),
    ]
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
    return tmp_path


def as_root(monkeypatch):
    monkeypatch.setattr(jobs_cmd, "current_caller", lambda: Caller(uid=0, gid=0))


def as_caller(monkeypatch, uid, gid=None):
    monkeypatch.setattr(jobs_cmd, "current_caller", lambda: Caller(uid=uid, gid=uid if gid is None else gid))


def ids(rows):
    return [r.job_id for r in rows]


def test_list_jobs_filters(data_dir):
    with open_store(data_dir / "nomade.db", readonly=True) as store:
        assert ids(list_jobs(store, JobQuery())) == ["8", "7", "6", "5", "4", "3", "2", "1"]
        assert ids(list_jobs(store, JobQuery(limit=2))) == ["8", "7"]
        assert ids(list_jobs(store, JobQuery(users=["alice"]))) == ["8", "2", "1"]
        assert ids(list_jobs(store, JobQuery(users=["alice"], cluster="c1"))) == ["2", "1"]
        assert ids(list_jobs(store, JobQuery(since=T0 + 5 * DAY))) == ["8", "7", "6"]
        assert ids(list_jobs(store, JobQuery(states=["FAILED", "TO"]))) == ["3", "2"]
        assert ids(list_jobs(store, JobQuery(states=["cancelled_owner"]))) == ["4"]
        assert ids(list_jobs(store, JobQuery(states=["cancelled_other"]))) == ["5"]
        assert ids(list_jobs(store, JobQuery(states=["system", "oom"]))) == ["8", "6"]
        assert ids(list_jobs(store, JobQuery(states=["unknown"]))) == ["7"]
        rows = list_jobs(store, JobQuery(users=["bob"]))
        assert [r.outcome for r in rows] == ["cancelled_other", "cancelled_owner", "timeout"]


def test_outcome_counts(data_dir):
    with open_store(data_dir / "nomade.db", readonly=True) as store:
        c = outcome_counts(store, cluster="c1")
        assert (c.jobs, c.users, c.first_submit, c.last_submit) == (7, 3, T0, T0 + 6 * DAY)
        assert c.by_class == {"success": 1, "failed": 1, "timeout": 1, "cancelled_owner": 1,
                              "cancelled_other": 1, "oom": 1, "unknown": 1}
        assert round(c.share("success"), 2) == round(100 / 7, 2)
        assert outcome_counts(store).by_class["system"] == 1


@pytest.mark.parametrize("text, expected", [
    ("7d", 1000.0 - 7 * DAY), ("12h", 1000.0 - 12 * 3600), ("30m", 1000.0 - 1800), ("2w", 1000.0 - 14 * DAY),
    ("2024-05-01", T0), ("2024-05-01T06:00", T0 + 6 * 3600), ("2024-05-01T06:00+02:00", T0 + 4 * 3600),
])
def test_parse_since(text, expected):
    assert parse_since(text, now=1000.0) == expected


@pytest.mark.parametrize("bad", ["yesterday", "7x", "", "2024-13-01"])
def test_parse_since_rejects(bad):
    with pytest.raises(ValueError):
        parse_since(bad, now=0)


def test_state_condition_rejects_unknown():
    with pytest.raises(ValueError, match="unknown state or failure class 'bogus'"):
        state_condition(["bogus"])


def test_cli_table_as_root(data_dir, monkeypatch):
    as_root(monkeypatch)
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "jobs", "--cluster", "c1", "-n", "3"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["JOBID", "USER", "NAME", "STATE", "SUBMIT", "(UTC)", "ELAPSED", "EXIT"]
    assert lines[1].split()[:4] == ["7", "carol", "n7", "RUNNING"]
    assert len(lines) == 4
    # columns are aligned: every row's STATE starts where the header's does
    col = lines[0].index("STATE")
    assert all(line[col - 2:col] == "  " and line[col] != " " for line in lines)


def test_cli_formats_times_and_exit(data_dir, monkeypatch):
    as_root(monkeypatch)
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "jobs", "--user", "alice",
                                   "--state", "FAILED,COMPLETED"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].split() == ["2", "alice", "n2", "FAILED", "2024-05-02", "00:00",
                                                  "1-01:01:01", "2:0"]
    assert res.output.splitlines()[2].split()[-2:] == ["01:01:01", "0:0"]


def test_cli_non_root_sees_only_own_jobs(data_dir, monkeypatch):
    as_caller(monkeypatch, 1001)                             # bob
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "jobs", "--json"])
    assert [j["job_id"] for j in json.loads(res.output)] == ["5", "4", "3"]
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "jobs", "--state", "oom"])
    assert res.exit_code == 0 and "no jobs of yours" in res.output


def test_cli_json_fields(data_dir, monkeypatch):
    as_root(monkeypatch)
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "jobs", "--json", "--since", "2024-05-07"])
    doc = json.loads(res.output)
    assert [j["job_id"] for j in doc] == ["8", "7"]
    assert doc[0]["cluster"] == "c2" and doc[0]["outcome"] == "system"


def test_cli_bad_options_are_usage_errors(data_dir):
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "jobs", "--since", "soon"])
    assert res.exit_code == 2 and "neither a relative time" in res.output
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "jobs", "--state", "bogus"])
    assert res.exit_code == 2 and "unknown state or failure class" in res.output


def test_cli_without_store_is_one_line_error(tmp_path, capsys):
    rc = run_cli(cli, ["--data-dir", str(tmp_path / "empty"), "jobs"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "no store here" in err


# ---------------------------------------------------------------- the why-service's access rule
NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name


@pytest.fixture
def nobody_dir(tmp_path):
    jobs = [
        _job("1", "alice", "COMPLETED", T0, uid=1000),
        _job("2", "nobody", "FAILED", T0 + DAY, uid=NOBODY.pw_uid),
        _job("3", "nobody", "COMPLETED", T0 + 2 * DAY, uid=None),       # no uid: the name decides
        _job("4", "alice", "COMPLETED", T0 + 3 * DAY, uid=None),
        _job("5", "nobody", "COMPLETED", T0 + 4 * DAY, uid=1000),       # alice's uid: not nobody's
    ]
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, jobs, "test")
    return tmp_path


def _jobs(data_dir, *args):
    rc_out = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "jobs", "--json", *args])
    return rc_out


def test_non_root_default_is_own_jobs_by_uid_then_name(nobody_dir, monkeypatch):
    as_caller(monkeypatch, NOBODY.pw_uid, NOBODY.pw_gid)
    res = _jobs(nobody_dir)
    assert res.exit_code == 0, res.output
    assert [j["job_id"] for j in json.loads(res.output)] == ["3", "2"]
    res = _jobs(nobody_dir, "--user", "nobody")                 # naming oneself is fine
    assert [j["job_id"] for j in json.loads(res.output)] == ["3", "2"]


@pytest.mark.parametrize("args", [["--all-users"], ["--user", "alice"], ["--user", "nobody", "-u", "alice"]])
def test_non_root_asking_for_others_is_refused_in_one_line(nobody_dir, monkeypatch, capsys, args):
    as_caller(monkeypatch, NOBODY.pw_uid, NOBODY.pw_gid)
    rc = run_cli(cli, ["--data-dir", str(nobody_dir), "jobs", *args])
    out = capsys.readouterr()
    assert rc == 1 and out.out == "" and out.err.count("\n") == 1
    assert "only root and admins may list other users' jobs" in out.err


def test_admin_group_member_may_list_everyone(nobody_dir, monkeypatch):
    monkeypatch.setenv("NOMADE_PRIVACY_ADMIN_GROUP", NOBODY_GROUP)
    as_caller(monkeypatch, NOBODY.pw_uid, NOBODY.pw_gid)
    assert [j["job_id"] for j in json.loads(_jobs(nobody_dir).output)] == ["3", "2"]   # own by default
    assert len(json.loads(_jobs(nobody_dir, "--all-users").output)) == 5
    assert [j["job_id"] for j in json.loads(_jobs(nobody_dir, "--user", "alice").output)] == ["4", "1"]


def test_root_lists_everyone_by_default(nobody_dir, monkeypatch):
    as_root(monkeypatch)
    assert len(json.loads(_jobs(nobody_dir).output)) == 5


def test_local_caller_is_the_real_uid_of_a_process_run_as_nobody(tmp_path):
    """In a child that setuid()s to nobody: the caller is nobody, and --all-users is refused."""
    from nomade.caller_access import listing_scope, local_caller
    from nomade.errors import AccessDenied
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                             # the child: report, never return
        os.close(r)
        code = "error"
        try:
            os.setgid(NOBODY.pw_gid)
            os.setgroups([])
            os.setuid(NOBODY.pw_uid)
            caller = local_caller()
            try:
                listing_scope(caller, "root", (), all_users=True)
                code = f"allowed {caller.uid}"
            except AccessDenied:
                code = f"refused {caller.uid}"
        finally:
            os.write(w, code.encode())
            os._exit(0)
    os.close(w)
    got = os.read(r, 100).decode()
    os.waitpid(pid, 0)
    assert got == f"refused {NOBODY.pw_uid}"
