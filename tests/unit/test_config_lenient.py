"""A broken config breaks only what needs the broken part (issue 12 item 4): the hooks, the
MailProg, the why-service and collect load leniently (a bad value keeps its default, an unknown
key is skipped, an unreadable file counts as absent; each noted once), admin commands strictly."""

import pytest

from nomade.config import load_config
from nomade.errors import ConfigError
from nomade.hooks.harness import run_hook


def _write(tmp_path, text):
    p = tmp_path / "nomade.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_typo_and_bad_value_keep_defaults_and_are_noted(tmp_path):
    path = _write(tmp_path, '[hooks]\ntimeout_s = "fast"\ntimeot_s = 3\n[model]\nalert_budget = 7.0\n'
                            '[slurm]\noverlap_s = 60\n')
    with pytest.raises(ConfigError):
        load_config(path, environ={})
    cfg = load_config(path, environ={}, lenient=True)
    assert cfg.get("hooks.timeout_s") == 3.0 and cfg.get("model.alert_budget") == 0.10
    assert cfg.get("slurm.overlap_s") == 60                 # the good part of the file is used
    text = "\n".join(cfg.problems)
    assert "hooks.timeout_s" in text and "timeot_s" in text and "model.alert_budget" in text
    assert len(cfg.problems) == 3


def test_unparseable_or_missing_file_is_still_an_error(tmp_path):
    """Nothing says where data and logs go: the hooks skip (tests/unit/test_hooks.py), the
    MailProg still delivers on defaults (test_hooks_mail.py)."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[hooks\ntimeout_s = 1\n"), environ={}, lenient=True)
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"), environ={}, lenient=True)


def test_bad_environment_value_falls_back_to_the_file(tmp_path):
    path = _write(tmp_path, "[hooks]\ntimeout_s = 5.0\n")
    cfg = load_config(path, environ={"NOMADE_HOOKS_TIMEOUT_S": "soon"}, lenient=True)
    assert cfg.get("hooks.timeout_s") == 5.0 and "NOMADE_HOOKS_TIMEOUT_S" in cfg.problems[0]


def test_hook_runs_with_a_typo_in_the_config(tmp_path, capsys):
    path = _write(tmp_path, f'data_dir = "{tmp_path}"\n[hooks]\ntimeout_s = "x"\nlog_fle = "/x"\n')
    ran = []
    rc = run_hook("prolog", lambda cfg, env, log: ran.append(cfg.get("hooks.timeout_s")) or "done",
                  environ={"NOMADE_CONFIG": path, "SLURM_JOB_ID": "77"})
    assert rc == 0 and ran == [3.0]
    err = capsys.readouterr().err
    assert "config problems, defaults used instead" in err and "log_fle" in err and "77" in err


def test_config_check_lists_every_problem(tmp_path, capsys):
    from nomade.cli.main import cli, run_cli
    path = _write(tmp_path, '[hooks]\ntimeout_s = "x"\nbogus = 1\n')
    assert run_cli(cli, ["--config", path, "config", "check"]) == 1
    out, err = capsys.readouterr()
    assert "hooks.timeout_s" in out and "bogus" in out and "2 problem(s)" in err
    good = _write(tmp_path, "[hooks]\ntimeout_s = 3.0\n")
    assert run_cli(cli, ["--config", good, "config", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok:")
