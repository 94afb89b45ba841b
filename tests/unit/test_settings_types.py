"""Settings of list and table types, dotted sections read from nested TOML tables, their
NOMADE_* overrides, validation, and collector_settings."""

import os

import pytest

from nomade import config as config_mod
from nomade.cli.main import cli, run_cli
from nomade.config import load_config
from nomade.errors import ConfigError
from nomade.settings import SETTINGS, Setting, collector_settings

FAKE = collector_settings("fake", ("paths", list, ["/"], "Paths."),
                          ("limits", dict, {}, "Limits per path."), interval_s=30.0)


@pytest.fixture(autouse=True)
def fake_collector_settings(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setattr(config_mod, "SETTINGS", SETTINGS + FAKE)


def toml(tmp_path, text):
    p = tmp_path / "nomade.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_collector_settings_declares_enabled_interval_required_and_extras():
    names = [(s.name, s.type, s.default) for s in FAKE]
    assert names == [("collectors.fake.enabled", bool, True), ("collectors.fake.interval_s", float, 30.0),
                     ("collectors.fake.required", bool, False), ("collectors.fake.paths", list, ["/"]),
                     ("collectors.fake.limits", dict, {})]
    assert FAKE[3].env_var == "NOMADE_COLLECTORS_FAKE_PATHS" and FAKE[3].type_name == "list of strings"
    # the brief's positional form: enabled, interval_s, then extras
    pos = collector_settings("p", False, 5, Setting("x", "k", str, "", "h"))
    assert [(s.key, s.default) for s in pos] == [("enabled", False), ("interval_s", 5.0),
                                                 ("required", False), ("k", "")]
    assert pos[3].section == "collectors.p"


def test_defaults_are_fresh_copies(tmp_path):
    cfg = load_config(environ={})
    cfg.get("collectors.fake.paths").append("/x")
    assert load_config(environ={}).get("collectors.fake.paths") == ["/"]
    assert FAKE[3].default == ["/"]


def test_nested_toml_tables_and_section(tmp_path):
    path = toml(tmp_path, '[collectors.fake]\npaths = ["/", "/scratch"]\ninterval_s = 10\n'
                          '[collectors.fake.limits]\n"/scratch" = 0.9\n')
    cfg = load_config(path, environ={})
    assert cfg.get("collectors.fake.paths") == ["/", "/scratch"]
    assert cfg.get("collectors.fake.limits") == {"/scratch": 0.9}
    assert cfg.get("collectors.fake.interval_s") == 10.0
    assert cfg.section("collectors.fake")["paths"] == ["/", "/scratch"]
    # the same as a dotted-key table header and as an inline table
    path = toml(tmp_path, '[collectors]\nfake = { paths = ["/a"] }\n')
    assert load_config(path, environ={}).get("collectors.fake.paths") == ["/a"]


def test_env_overrides_lists_and_tables_as_text(tmp_path):
    path = toml(tmp_path, '[collectors.fake]\npaths = ["/"]\n')
    cfg = load_config(path, environ={"NOMADE_COLLECTORS_FAKE_PATHS": " /, /scratch ,,",
                                     "NOMADE_COLLECTORS_FAKE_LIMITS": "a=1, b = x"})
    assert cfg.get("collectors.fake.paths") == ["/", "/scratch"]
    assert cfg.get("collectors.fake.limits") == {"a": "1", "b": "x"}
    assert cfg.sources["collectors.fake.paths"] == "env NOMADE_COLLECTORS_FAKE_PATHS"
    assert load_config(path, environ={"NOMADE_MONITORING_COLLECTORS": "disk,queue"}).get(
        "monitoring.collectors") == ["disk", "queue"]


@pytest.mark.parametrize("text,words", [
    ('[collectors.fake]\npaths = ["/", 3]\n', "expected a list of strings"),
    ('[collectors.fake]\nlimits = 3\n', "expected a table"),
    ('[collectors.fake.limits]\na = [1]\n', "expected a table of strings, numbers or booleans"),
    ('[collectors.fake.limits]\na = nan\n', "expected a finite number"),
    ('[collectors.fake]\ninterval_s = 0\n', "collectors.fake.interval_s = 0.0: expected a number > 0"),
    ('[collectors.fake]\nnope = 1\n', "unknown key collectors.fake.nope in [collectors.fake]"),
    ('[monitoring.x]\na = 1\n', "unknown section [monitoring.x]"),
    ('[monitoring]\nraw_days = -1\n', "monitoring.raw_days = -1.0"),
])
def test_bad_values_name_the_file_and_key(tmp_path, text, words):
    path = toml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert path in str(err.value) and words in str(err.value)


def test_a_toml_string_is_read_as_a_comma_separated_list(tmp_path):
    path = toml(tmp_path, '[collectors.fake]\npaths = "/, /scratch"\n')
    assert load_config(path, environ={}).get("collectors.fake.paths") == ["/", "/scratch"]


def test_bad_env_table_names_the_variable():
    with pytest.raises(ConfigError, match="environment NOMADE_COLLECTORS_FAKE_LIMITS: .*key=value"):
        load_config(environ={"NOMADE_COLLECTORS_FAKE_LIMITS": "novalue"})


def test_undeclared_collector_tables_are_kept_for_plugins(tmp_path):
    path = toml(tmp_path, '[collectors.acme]\ninterval_s = 5\ncommand = "x"\n')
    assert load_config(path, environ={}).plugin_sections == {"acme": {"interval_s": 5, "command": "x"}}


def test_config_show_prints_lists(tmp_path, capsys):
    path = toml(tmp_path, '[collectors.fake]\npaths = ["/", "/scratch"]\n')
    assert run_cli(cli, ["--config", path, "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "collectors.fake.paths" in out and "['/', '/scratch']" in out
