"""Configuration: precedence CLI > NOMADE_* environment > TOML file > default, validation, and
`nomade config show --json`."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.cli.main import cli, run_cli
from nomade.config import load_config
from nomade.errors import ConfigError
from nomade.settings import SETTINGS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No NOMADE_* variable and no system config file leak into these tests."""
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


def write(tmp_path: Path, text: str, name: str = "nomade.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file(tmp_path):
    cfg = load_config(environ={})
    assert cfg.file is None
    for s in SETTINGS:
        if s.default is not None:
            assert cfg.get(s.name) == s.default
            assert cfg.sources[s.name] == "default"
    assert cfg.sources["data_dir"] == "default (derived)"


def test_precedence_cli_over_env_over_file_over_default(tmp_path):
    path = write(tmp_path, "[slurm]\noverlap_s = 100\ncommand_timeout_s = 5\n"
                           "[ingest]\nbatch_size = 7\n")
    env = {"NOMADE_SLURM_OVERLAP_S": "200", "NOMADE_SLURM_COMMAND_TIMEOUT_S": "9.5"}
    cfg = load_config(str(path), overrides={"slurm.overlap_s": 300}, environ=env)
    assert cfg.get("slurm.overlap_s") == 300 and cfg.sources["slurm.overlap_s"] == "command line"
    assert cfg.get("slurm.command_timeout_s") == 9.5
    assert cfg.sources["slurm.command_timeout_s"] == "env NOMADE_SLURM_COMMAND_TIMEOUT_S"
    assert cfg.get("ingest.batch_size") == 7 and cfg.sources["ingest.batch_size"] == f"file {path}"
    assert cfg.get("train.seed") == 7 and cfg.sources["train.seed"] == "default"


def test_none_override_means_not_given(tmp_path):
    cfg = load_config(overrides={"data_dir": None}, environ={"NOMADE_DATA_DIR": str(tmp_path)})
    assert cfg.data_dir == tmp_path


def test_nomade_data_dir_derives_paths(tmp_path):
    cfg = load_config(environ={"NOMADE_DATA_DIR": str(tmp_path / "d")})
    assert cfg.sources["data_dir"] == "env NOMADE_DATA_DIR"
    assert cfg.store_path == tmp_path / "d" / "nomade.db"
    assert cfg.registry_dir == tmp_path / "d" / "models"
    assert cfg.spool_dir("hooks") == tmp_path / "d" / "spool" / "hooks"


def test_section_env_vars_are_parsed_to_the_declared_type():
    cfg = load_config(environ={"NOMADE_STORE_BUSY_TIMEOUT_MS": "2500",
                               "NOMADE_MODEL_OWNER_CANCEL_IS_FAILURE": "yes",
                               "NOMADE_RECORDER_INTERVAL_S": "12"})
    assert cfg.get("store.busy_timeout_ms") == 2500
    assert cfg.get("model.owner_cancel_is_failure") is True
    assert cfg.get("recorder.interval_s") == 12.0 and isinstance(cfg.get("recorder.interval_s"), float)


def test_config_file_from_nomade_config_env(tmp_path):
    path = write(tmp_path, 'cluster = "atlas"\n')
    cfg = load_config(environ={"NOMADE_CONFIG": str(path)})
    assert cfg.file == path and cfg.get("cluster") == "atlas"


@pytest.mark.parametrize("text, words", [
    ("[nosuch]\nx = 1\n", ["unknown section [nosuch]"]),
    ("[store]\nnosuch = 1\n", ["unknown key store.nosuch"]),
    ("nosuch = 1\n", ["unknown key nosuch"]),
    ('[store]\nbusy_timeout_ms = "soon"\n', ["store.busy_timeout_ms", "expected an integer"]),
    ("[slurm]\nsacct = 3\n", ["slurm.sacct", "expected a string"]),
    ("[model]\nowner_cancel_is_failure = 1\n", ["model.owner_cancel_is_failure", "true or false"]),
    ("[store]\nbusy_timeout_ms = true\n", ["store.busy_timeout_ms", "expected an integer"]),
    ("[ingest]\nbatch_size = 0\n", ["ingest.batch_size", "positive"]),
    ("[model]\nalert_threshold = 1.5\n", ["model.alert_threshold", "0..1"]),
    ("[store\n", ["not valid TOML"]),
    ("[hooks]\ntimeout_s = nan\n", ["hooks.timeout_s", "finite"]),
    ("[hooks]\ntimeout_s = inf\n", ["hooks.timeout_s", "finite"]),
    ("[recorder]\ninterval_s = -inf\n", ["recorder.interval_s", "finite"]),
])
def test_bad_file_names_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(str(path), environ={})
    msg = str(exc.value)
    assert str(path) in msg
    for w in words:
        assert w in msg
    assert "\n" not in msg


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "infinity"])
def test_non_finite_numbers_from_the_environment_are_refused(value):
    """hooks.timeout_s = nan passed every `<= 0` check and left the hooks without a time bound."""
    with pytest.raises(ConfigError, match="NOMADE_HOOKS_TIMEOUT_S.*finite"):
        load_config(environ={"NOMADE_HOOKS_TIMEOUT_S": value})


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="NOMADE_SLURM_OVERLAP_S.*expected an integer"):
        load_config(environ={"NOMADE_SLURM_OVERLAP_S": "an hour"})
    with pytest.raises(ConfigError, match="true or false"):
        load_config(environ={"NOMADE_MODEL_OWNER_CANCEL_IS_FAILURE": "maybe"})


def test_ints_accepted_for_floats_in_file(tmp_path):
    cfg = load_config(str(write(tmp_path, "[hooks]\ntimeout_s = 3\n")), environ={})
    assert cfg.get("hooks.timeout_s") == 3.0 and isinstance(cfg.get("hooks.timeout_s"), float)


def test_unreadable_config_files(tmp_path):
    # tests run as root, so chmod 000 would not deny; use a directory, bad bytes, a missing file
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path), environ={})
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'cluster = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(str(bad), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"), environ={})


def test_config_show_json_reports_sources(tmp_path, monkeypatch):
    path = write(tmp_path, "[train]\nseed = 11\n")
    monkeypatch.setenv("NOMADE_SLURM_OVERLAP_S", "60")
    result = CliRunner().invoke(cli, ["--config", str(path), "--data-dir", str(tmp_path),
                                      "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["file"] == str(path)
    s = doc["settings"]
    assert s["data_dir"] == {"value": str(tmp_path), "source": "command line"}
    assert s["slurm.overlap_s"] == {"value": 60, "source": "env NOMADE_SLURM_OVERLAP_S"}
    assert s["train.seed"] == {"value": 11, "source": f"file {path}"}
    assert s["ingest.batch_size"]["source"] == "default"
    assert set(s) == {x.name for x in SETTINGS}


def test_cli_config_error_is_one_line_exit_1(tmp_path, capsys):
    path = write(tmp_path, "[nosuch]\n")
    rc = run_cli(cli, ["--config", str(path), "config", "show"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("nomade: error: ") and err.count("\n") == 1
    assert "Traceback" not in err and "unknown section [nosuch]" in err
