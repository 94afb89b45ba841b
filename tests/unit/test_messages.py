"""Messages a user believes: the exact sentences sbatch (submit_model.lua and its Python port),
the start line and nomade-why show for a timeout-like, an out-of-memory-like, a failed and a plain
job built from a small synthetic history; every feature of every schema in words; one reason per
family; a time-limit reason only in the direction of the --time suggestion; contributions in
points of risk."""

import math

import pytest

from nomade.features import schema
from nomade.features.words import DESCRIPTION, distinct, reason_text, warning_reason
from nomade.scoring.calibration import CalibrationMap
from nomade.scoring.lite_features import LiteHistory, lite_names
from nomade.scoring.lua_verdict import LuaModel
from nomade.scoring.trees import TREES_FORMAT, TreeEnsemble

T = 1_790_000_000.0
NAMES = lite_names(True)


def _hist() -> LiteHistory:
    h = LiteHistory()
    t = [T - 86400.0]

    def add(user, name, y, runtime):
        t[0] += 60
        h.add_ended(user, name, y, runtime, t[0])
    for _ in range(4):
        add("alice", "sim", 0, 7200.0)       # the simulation needs 2 h ...
    for _ in range(3):
        add("alice", "sim", 1, 1800.0)       # ... and timed out three times at 30 min
    for _ in range(3):
        add("alice", "fit", 0, 600.0)
    add("alice", "fit", 1, 30.0)             # ran out of memory
    for _ in range(5):
        add("alice", "plain", 0, 300.0)
    for _ in range(2):
        add("carol", "other", 0, 100.0)
    for _ in range(5):
        add("carol", "fails", 1, 20.0)       # exits with an error every time
    add("bob", "loop", 0, 60.0)              # one short success, then ...
    for _ in range(4):
        add("bob", "loop", 1, 1800.0)        # ... it keeps hitting its 30-minute limit
    return h


def _stump(feature: str, threshold: float, left: float, right: float, nan_left: bool) -> dict:
    return {"feature": [NAMES.index(feature), -1, -1], "value": [0.0, left, right],
            "threshold": [threshold, 0.0, 0.0], "nan_to_zero": [False] * 3,
            "default_left": [nan_left] * 3, "left": [1, -1, -1], "right": [2, -1, -1]}


def _trees() -> dict:
    bias = {"feature": [-1], "value": [-2.0], "threshold": [0.0], "nan_to_zero": [False],
            "default_left": [True], "left": [-1], "right": [-1]}
    return {"format": TREES_FORMAT, "feature_names": NAMES, "trees": [
        bias,
        _stump("timelimit_over_p90", 0.5, 2.5, 0.0, False),    # far too short a limit
        _stump("timelimit_over_p90", 10.0, 0.0, 1.0, False),   # a model may also like long ones
        _stump("name_fail_streak", 1.5, 0.0, 1.5, True),
        _stump("name_fail_rate", 0.7, 0.0, 1.0, True),
        _stump("user_fail_rate", 0.5, 0.0, 2.0, True),
        _stump("req_mem_total_mb", 1024.0, 2.2, 0.0, False),
        _stump("name_last_failed", 0.5, 0.0, 0.8, True),
        _stump("req_cpus", 8.0, 0.0, 0.6, True),
    ]}


def _req(user, name, tl, mem=4000.0, cpus=4):
    return {"user": user, "name": name, "cpus": cpus, "nodes": 1, "gpus": 0, "mem_mb": mem,
            "mem_per_cpu": False, "timelimit_s": tl, "submit_time": T, "recent_submits": 0}


CASES = {
    "timeout": (_req("alice", "sim", 1800),
                "nomade: CRITICAL failure risk (94%): time limit of 30m, shorter than the 2h00m your "
                "similar jobs needed; your last 3 jobs with this name failed.\n"
                "nomade: suggestion: --time=02:25:00 (similar jobs needed 2h00m)\n"
                "nomade: details after submission: nomade-why JOBID; silence: --comment=nomade:quiet"),
    "oom": (_req("alice", "fit", 3600, mem=512.0),
            "nomade: HIGH failure risk (73%): memory request of 0.5 GiB; your previous job with this "
            "name failed.\n"
            "nomade: details after submission: nomade-why JOBID; silence: --comment=nomade:quiet"),
    # carol's jobs named "fails" never succeeded: the ratio to her other jobs' runtimes (36x)
    # raises the risk in this model, and is not said
    "failed": (_req("carol", "fails", 3600, cpus=16),
               "nomade: CRITICAL failure risk (99%): 100% of your past jobs with this name failed "
               "(5 of 5); 16 CPUs requested.\n"
               "nomade: details after submission: nomade-why JOBID; silence: --comment=nomade:quiet"),
    # similar jobs keep hitting the limit: no "time limit 30x what they needed", no --time
    "limit_hit": (_req("bob", "loop", 1800),
                  "nomade: CRITICAL failure risk (99%): 80% of your past jobs with this name failed "
                  "(4 of 5).\n"
                  "nomade: details after submission: nomade-why JOBID; silence: --comment=nomade:quiet"),
    "plain": (_req("alice", "plain", 600), ""),
}


@pytest.fixture(scope="module")
def model():
    return LuaModel(TreeEnsemble(_trees()), CalibrationMap.identity(), _hist(), True, 0.5, "v-msg")


@pytest.mark.parametrize("case", sorted(CASES))
def test_sbatch_message_sentences(model, case):
    req, want = CASES[case]
    v = model.verdict(req)
    assert v.message == want, v.message
    assert v.warned == bool(want)
    if case == "plain":
        assert v.reasons == [] and v.suggestion is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_compiled_lua_says_the_same(model, case):
    lupa = pytest.importorskip("lupa")
    from nomade.train.lua_compile import compile_submit_lua
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    M = lua.execute(compile_submit_lua(_trees(), _hist(), CalibrationMap.identity(), "v-msg", 0.5, True))
    req, _ = CASES[case]
    t = lua.table()
    for k, v in req.items():
        t[k] = v
    risk, reasons, suggestion = M.predict(t)
    v = model.verdict(req)
    assert risk == pytest.approx(v.risk, abs=1e-9)
    assert [reasons[i + 1] for i in range(len(reasons))] == v.reasons
    assert suggestion == v.suggestion


def test_a_job_name_reason_takes_the_place_of_the_users():
    """carol's user-level failure rate weighs most; the job name's rate of the same kind is said
    instead, and its streak and last outcome (same family) not again."""
    from nomade.scoring.lua_verdict import lua_reasons
    h = _hist()
    x = h.features(_req("carol", "fails", 3600, cpus=16))
    c = [0.0] * len(x)
    for f, w in (("user_fail_rate", 2.0), ("name_fail_streak", 1.5), ("name_fail_rate", 1.0),
                 ("name_last_failed", 0.8), ("user_last_failed", 0.7)):
        c[NAMES.index(f)] = w
    assert lua_reasons(x, c) == ["100% of your past jobs with this name failed (5 of 5)"]


# ------------------------------------------------------------------ words for every feature
def _all_feature_names():
    from nomade.scoring.ensemble import BASE_REASONS
    names = set(schema.feature_names("start")) | set(lite_names(True)) | set(BASE_REASONS.values())
    return sorted(names)


@pytest.mark.parametrize("feature", _all_feature_names())
def test_every_feature_has_words(feature):
    assert feature in DESCRIPTION, f"no description for {feature}"
    for v in (0.0, 1.0, 2.0, 0.5, 3.16, 36.0, 1e6, -1.0, float("nan"), None):
        text = reason_text(feature, v)
        assert text and "=" not in text and "_" not in text, (feature, v, text)
        assert text == text.strip() and "nan" not in text.lower().split()


def test_categorical_codes_never_show_their_number():
    assert reason_text("name_code", 36) == "the job name"
    assert warning_reason("name_code", 36) is None
    assert reason_text("tl_vs_user_runtime", math.log(3.16)) == \
        "the time limit compared with your jobs' usual runtime"      # longer: no warning sentence
    assert reason_text("tl_vs_user_runtime", math.log(0.25)) == \
        "time limit is 0.25x the usual runtime of your jobs"


def test_full_schema_families_keep_one_reason():
    feats = ["u_fail_rate", "n_fail_streak", "timelimit_log", "n_fail_rate", "tl_vs_name_runtime", "req_cpus"]
    # u_fail_rate gives way to the name's streak; timelimit_log keeps its family's place but
    # the name-level tl_vs_name_runtime replaces it
    assert [feats[i] for i in distinct(feats)] == ["n_fail_streak", "tl_vs_name_runtime", "req_cpus"]


# ------------------------------------------------------------------ the start line
def test_start_line_one_reason_per_family_and_direction():
    from nomade.hooks.task_prolog import risk_line
    note = {"alert": True, "risk": 0.91, "suggestion": "--time=02:25:00 (similar jobs needed 2h00m)",
            "reasons": [{"feature": "u_fail_rate", "value": 0.99, "contribution": 1.0},
                        {"feature": "n_fail_streak", "value": 5, "contribution": 0.9},
                        {"feature": "tl_vs_name_runtime", "value": math.log(30), "contribution": 0.5}]}
    assert risk_line(note, "42") == (
        "nomade: CRITICAL failure risk (91%) at start: your last 5 jobs with this name failed. "
        "Suggestion: --time=02:25:00 (similar jobs needed 2h00m). Details: nomade-why 42")
    assert risk_line(dict(note, quiet=True), "42") is None


def test_quiet_tag_silences_the_start_line(tmp_path, capsys):
    """--comment=nomade:quiet reaches the TaskProlog through the Prolog's note (scontrol's
    Comment=); NOMADE_QUIET=1 through the job's environment: the same two ways as job_submit.lua."""
    from nomade.config import load_config
    from nomade.hooks import task_prolog
    from nomade.hooks.harness import HookLog
    from nomade.hooks.jobenv import quiet_comment, quiet_env
    from nomade.hooks.riskfile import write_risk

    cfg = load_config(None, {"data_dir": str(tmp_path / "data"),
                             "hooks.runtime_dir": str(tmp_path / "run")})
    note = {"job_id": "7", "risk": 0.9, "level": "CRITICAL", "threshold": 0.5, "alert": True,
            "reasons": [], "suggestion": None, "model_version": "v"}
    run = tmp_path / "run"
    write_risk(run, "7", None, dict(note, quiet=True))
    log = HookLog("task-prolog", "7")
    assert task_prolog.task_prolog_body(cfg, {"SLURM_JOB_ID": "7"}, log) == "--comment=nomade:quiet; silent"
    write_risk(run, "8", None, dict(note, job_id="8"))
    assert task_prolog.task_prolog_body(cfg, {"SLURM_JOB_ID": "8", "NOMADE_QUIET": "1"}, log) == \
        "NOMADE_QUIET set; silent"
    assert capsys.readouterr().out == ""
    assert task_prolog.task_prolog_body(cfg, {"SLURM_JOB_ID": "8", "NOMADE_QUIET": "0"}, log) == "printed risk line"
    assert quiet_comment("JobId=7 JobName=x UserId=a(1) GroupId=a(1) Comment=run nomade:quiet StdOut=/x")
    assert not quiet_comment("JobId=7 JobName=x UserId=a(1) GroupId=a(1) Comment=noisy StdOut=/x")
    assert not quiet_comment("JobId=7 JobName=nomade:quiet UserId=a(1) GroupId=a(1)")
    assert quiet_env({"NOMADE_QUIET": "yes"}) and not quiet_env({"NOMADE_QUIET": ""})


# ------------------------------------------------------------------ nomade-why
def test_why_contributions_in_points_of_risk():
    import json
    from nomade.why import format_why, parse_reasons, risk_points

    assert risk_points(2.2e16, 0.9) == pytest.approx(90.0, abs=0.01)     # clamped, never absurd
    assert risk_points(0.5, 0.5) == pytest.approx(12.2, abs=0.1)
    reasons = json.dumps([{"feature": "n_fail_streak", "value": 5, "contribution": 2.2e16},
                          {"feature": "u_fail_rate", "value": 0.99, "contribution": 1.0},
                          {"feature": "name_code", "value": 36, "contribution": 0.5},
                          {"feature": "req_cpus", "value": 4, "contribution": -0.01}])
    cs = parse_reasons(reasons, 0.6)
    assert [c.feature for c in cs] == ["n_fail_streak", "name_code", "req_cpus"]
    text = format_why({"job_id": "9", "name": "sim", "user": "alice", "state": "PENDING",
                       "risk_submit": None, "risk_start": None, "similar_summary": "none",
                       "contributions": [c.__dict__ for c in cs]})
    assert "  your last 5 jobs with this name failed: raises the risk by about 60 points" in text
    assert "  the job name: raises the risk by about 12 points" in text
    assert "  4 CPUs requested: lowers the risk by less than 1 point" in text
    assert "log-odds" not in text and "name_code" not in text and "e+16" not in text


def test_why_recommends_options_and_never_itself():
    from nomade.report import build_report
    from nomade.why import SimilarJob, recommend

    oom = SimilarJob("5", "fit", "OUT_OF_MEMORY", "oom", 30.0, 3600, 900.0, 512.0, "same name")
    ok = SimilarJob("4", "fit", "COMPLETED", "success", 600.0, 3600, 700.0, 512.0, "same name")
    assert recommend({"job_id": "6", "timelimit_s": 3600, "req_cpus": 1}, [oom, ok]) == [
        "--mem=2G: 1 similar job(s) ran out of memory (peak seen 900 MiB)."]
    slow = SimilarJob("3", "sim", "TIMEOUT", "timeout", 1800.0, 1800, None, None, "same name")
    assert recommend({"job_id": "6", "timelimit_s": 1800}, [slow]) == [
        "--time=00:39:00: 1 similar job(s) hit their time limit; the longest similar run took 30m00s."]
    job = {"job_id": "6", "state": "FAILED", "exit_code": 3, "exit_signal": 0, "uid": 1, "cancelled_by": None}
    assert any("nomade-why 6" in n for n in build_report(job).notes)
    assert not any("nomade-why" in n for n in build_report(job, via_why=True).notes)
