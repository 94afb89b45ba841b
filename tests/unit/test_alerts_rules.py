"""Alert rules as data (issue 15, item 1): validation at load, one error naming the file, the
rule and the field, hostile TOML included; the defaults follow the [alerts] settings and can be
switched off or replaced."""

import pytest

from nomade.alerts.rules import load_file, load_rules, parse_duration, render, template_fields
from nomade.config import load_config
from nomade.errors import ConfigError

GOOD = """
[[rule]]
name = "scratch_full"
metric = "disk.used_bytes"
divide_by = "disk.size_bytes"
scale = 100.0
threshold = 90
summary = "{mount} {value_words} full"
"""


def write(tmp_path, text, name="rules.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_file(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    return msg


@pytest.mark.parametrize("body,rule,field", [
    ('name = "a"\nmetric = "disk.used_bytes"\nthreshold = "high"', "a", "threshold"),
    ('name = "a"\nmetric = "disk.used_bytes"\nthreshold = nan', "a", "threshold"),
    ('name = "a"\nmetric = "disk.used_bytes"\nthreshold = inf', "a", "threshold"),
    ('name = "a"\nmetric = "disk.used_bytes"', "a", "threshold"),
    ('name = "a"\nmetric = "disk used"\nthreshold = 1', "a", "metric"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nop = "=~"', "a", "op"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nseverity = "panic"', "a", "severity"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nfor = "soon"', "a", "for"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nfor = -5', "a", "for"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nlabels = { mount = 3 }', "a", "labels.mount"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nlabels = { mount = "~([" }', "a", "labels.mount"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nsummary = "{0.__class__}"', "a", "summary"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nsummary = "{mount!r:>9}"', "a", "summary"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\ncolour = "red"', "a", "colour"),
    ('name = "a"\nmetric = "x"\nmeasure = "ttl"\nthreshold = 1', "a", "limit"),
    ('name = "a"\nmetric = "x"\nthreshold = 90\nclear = 95', "a", "clear"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nlevels = { warning = 1 }', "a", "levels"),
    ('name = "a"\nmetric = "x"\nlevels = { panic = 1 }', "a", "levels"),
    ('name = "a"\nkind = "shell"\nthreshold = 1', "a", "kind"),
    ('name = "a\\nb"\nmetric = "x"\nthreshold = 1', "#1", "name"),
    ('name = 7\nmetric = "x"\nthreshold = 1', "#1", "name"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nparams = { min_jobs = true }', "a", "params"),
    ('name = "a"\nmetric = "x"\nthreshold = 1\nkey_labels = ["ok", "not ok"]', "a", "key_labels"),
])
def test_bad_rule_is_one_error_naming_file_rule_and_field(tmp_path, body, rule, field):
    msg = error_of(tmp_path, "[[rule]]\n" + body + "\n")
    assert f"rule {rule}: {field}" in msg, msg


@pytest.mark.parametrize("text,expect", [
    ("[[rule]\nname = 'a'", "not valid TOML"),
    ("rule = 3", "expected [[rule]] tables"),
    ("rule = [1, 2]", "rule #1: expected a table"),
    ("[alerts]\nx = 1", "unknown top-level key"),
    ('[[rule]]\nname = "a"\nmetric = "x"\nthreshold = 1\n[[rule]]\nname = "a"\nmetric = "x"\nthreshold = 2',
     "defined twice"),
    ("\x00\x01\x02", "not valid TOML"),
])
def test_hostile_files(tmp_path, text, expect):
    assert expect in error_of(tmp_path, text)


def test_not_utf8_and_missing_files(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_bytes(b"\xff\xfe[[rule]]")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_file(p)
    with pytest.raises(ConfigError, match="not found"):
        load_file(tmp_path / "nope.toml")


def test_a_good_file_loads(tmp_path):
    [r] = load_file(write(tmp_path, GOOD))
    assert r.name == "scratch_full" and r.levels == (("warning", 90.0),) and r.source.endswith("rules.toml")


def test_defaults_follow_the_settings_and_switch_off(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path), "alerts.disk_warning_percent": 70.0,
                             "alerts.disabled_rules": ["gpu_xid"], "ml.alerts.high_risk_threshold": 0.75})
    rs = load_rules(cfg)
    by = {r.name: r for r in rs.rules}
    assert dict(by["disk_full"].levels) == {"warning": 70.0, "critical": 95.0}
    assert dict(by["disk_fill"].levels) == {"warning": 3 * 86400.0, "critical": 86400.0}
    assert by["disk_fill"].unless == "disk.read_only"
    assert by["high_risk_job"].levels[0][1] == 0.75
    assert "gpu_xid" not in by and rs.disabled == ["gpu_xid"]
    default = {r.name: r for r in load_rules(load_config(None, {"data_dir": str(tmp_path)})).rules}
    assert default["high_risk_job"].levels[0][1] == 0.6            # the risk scale's HIGH cut-off
    for name in ("disk_full", "disk_fill", "inodes_full", "inodes_fill", "quota_near_limit", "node_down",
                 "job_pending_long", "slurm_daemon_down", "license_server_down", "license_expiring",
                 "licenses_exhausted", "gpu_temperature", "gpu_ecc_errors", "gpu_xid", "nfs_retransmissions",
                 "nfs_latency_accelerating", "queue_accelerating", "blackhole", "memory_pressure",
                 "collector_down", "model_stale", "high_risk_job", "early_warning"):
        assert name in default, name


def test_rule_file_replaces_and_disables_defaults(tmp_path):
    p = write(tmp_path, GOOD.replace("scratch_full", "disk_full") + '\n[[rule]]\nname = "node_down"\nenabled = false\n')
    cfg = load_config(None, {"data_dir": str(tmp_path), "alerts.rule_files": [str(p)]})
    rs = load_rules(cfg)
    by = {r.name: r for r in rs.rules}
    assert by["disk_full"].levels == (("warning", 90.0),) and "node_down" not in by
    assert "node_down" in rs.disabled


def test_durations_and_templates():
    assert parse_duration("90s") == 90 and parse_duration("4h") == 14400 and parse_duration(30) == 30
    for bad in ("", "4 hours", "-1h", True, "1e9999h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert template_fields("{mount} {value_words}") == ["mount", "value_words"]
    assert render("{mount} is\n{missing}", {"mount": "/x"}) == "/x is ?"
