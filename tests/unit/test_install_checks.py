"""install-slurm checks before it writes: every account that runs a hook can execute the
interpreter and import nomade (nomade.install_probe), and the systemd units of every moving part
are filled in for the install (nomade.install_units)."""

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade import install_probe
from nomade.cli.main import cli, run_cli
from nomade.command import CommandResult
from nomade.errors import ConfigError
from nomade.install_probe import accounts, probe_all, refusal
from nomade.install_units import ENABLE_ON_STORE_HOST, UNITS, format_units, plan_units

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "slurm_plugins" / "systemd"


def _can_switch_to_nobody():
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return False
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return True


needs_root = pytest.mark.skipif(not _can_switch_to_nobody(), reason="needs root, runuser and user nobody")


# ---------------------------------------------------------------- who runs what

def test_accounts_name_every_hook_and_who_runs_it():
    parts = {p: a for a in accounts("slurm") for p in a.parts}
    assert set(parts) == {"Prolog", "Epilog", "MailProg", "TaskProlog", "nomade-why"}
    assert parts["Prolog"].check_as == parts["Epilog"].check_as == "root"
    assert parts["MailProg"].check_as == "slurm" and "SlurmUser" in parts["MailProg"].runs_as
    assert parts["TaskProlog"].check_as == parts["nomade-why"].check_as == "nobody"
    # SlurmUser root: the MailProg is checked with Prolog and Epilog; --no-mail: not at all
    assert [a.check_as for a in accounts("root")] == ["root", "nobody"]
    assert "MailProg" not in {p for a in accounts("slurm", mail=False) for p in a.parts}


def test_refusal_names_the_account_the_interpreter_and_the_error(monkeypatch):
    def fake_run(argv, timeout, **kw):
        if "nobody" in argv:
            return CommandResult(argv, 1, "", "Traceback ...\nModuleNotFoundError: No module named 'nomade'\n")
        return CommandResult(argv, 0, "0.1.0 /opt/nomade/lib/nomade/__init__.py", "")
    monkeypatch.setattr(install_probe, "run_command", fake_run)
    monkeypatch.setattr(install_probe, "_as_user", lambda user, argv: [user] + argv)
    results = probe_all("/opt/nomade/bin/python", "", "slurm")
    assert [r.ok for r in results] == [True, True, False]
    assert results[0].line().endswith("ok (nomade 0.1.0 from /opt/nomade/lib/nomade/__init__.py)")
    line = refusal(results, "/opt/nomade/bin/python")
    assert line == ("nobody cannot run nomade with /opt/nomade/bin/python (ModuleNotFoundError: No module "
                    "named 'nomade'), and the TaskProlog and nomade-why run as the job's user / any user")
    assert refusal(results[:2], "/opt/nomade/bin/python") is None


def test_not_root_means_not_checked_and_not_refused(monkeypatch):
    monkeypatch.setattr(install_probe.os, "geteuid", lambda: 12345)
    [r] = [r for r in probe_all(sys.executable, "", "root") if r.account.check_as == "nobody"]
    assert r.ok is None and "run install-slurm as root to check as nobody" in r.line()
    assert refusal([r], sys.executable) is None


@needs_root
def test_root_only_interpreter_is_found_as_nobody(tmp_path):
    """A venv under a 0700 directory (root's home, pytest's tmp): root runs it, nobody cannot."""
    tmp_path.chmod(0o700)
    (tmp_path / "venv").symlink_to(sys.prefix)   # this venv, seen through a private directory
    private = tmp_path / "venv" / "bin"
    results = probe_all(str(private / "python"), "", "root")
    by = {r.account.check_as: r for r in results}
    assert by["root"].ok is True, by["root"].detail
    assert by["nobody"].ok is False and "Permission denied" in by["nobody"].detail
    assert "nobody cannot run nomade with" in refusal(results, str(private / "python"))


# ---------------------------------------------------------------- the command

def _conf(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lab\n")
    return conf


def _args(tmp_path, conf, *extra):
    return ["--data-dir", str(tmp_path / "data"), "install-slurm", "--slurm-conf", str(conf),
            "--lib-dir", str(tmp_path / "lib"), "--model-path", str(tmp_path / "m" / "model.lua"),
            "--log-file", str(tmp_path / "log" / "hooks.log"), "--unit-dir", str(tmp_path / "units"), *extra]


def _env(tmp_path):
    return {"NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
            "NOMADE_PRIVACY_SOCKET": str(tmp_path / "sock" / "why.sock"), "NOMADE_CONFIG": ""}


@needs_root
def test_install_refuses_an_interpreter_users_cannot_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "root-only").mkdir(mode=0o700)
    (tmp_path / "root-only" / "venv").symlink_to(sys.prefix)
    private = tmp_path / "root-only" / "venv" / "bin"
    conf = _conf(tmp_path)
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert run_cli(cli, _args(tmp_path, conf, "--python", str(private / "python"))) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("nomade: error: install-slurm: nothing written: nobody cannot run nomade with "
                             f"{private / 'python'} (runuser: failed to execute")
    assert "TaskProlog and nomade-why run as the job's user" in err[0] and "or --force" in err[0]
    assert conf.read_text() == "ClusterName=lab\n" and not (tmp_path / "lib").exists()
    # the dry run shows the interpreter and the accounts, and writes nothing
    runner = CliRunner()
    res = runner.invoke(cli, _args(tmp_path, conf, "--python", str(private / "python"), "--dry-run"))
    assert res.exit_code == 0, res.output
    assert f"Interpreter written into the hooks: {private / 'python'}" in res.output
    assert "Prolog, Epilog, MailProg: run as root (slurmd; slurmctld for MailProg), checked as root: ok" in res.output
    assert "TaskProlog, nomade-why: run as the job's user / any user, checked as nobody: FAILS" in res.output
    assert not (tmp_path / "lib").exists()
    # --force installs anyway, units included
    res = runner.invoke(cli, _args(tmp_path, conf, "--python", str(private / "python"), "--force"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "lib" / "task_prolog").is_file()
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == sorted(UNITS)


def test_install_writes_units_when_every_account_can_run_it(tmp_path, monkeypatch):
    monkeypatch.setattr(install_probe, "run_command",
                        lambda argv, timeout, **kw: CommandResult(argv, 0, "0.1.0 /x/nomade/__init__.py", ""))
    conf = _conf(tmp_path)
    res = CliRunner().invoke(cli, _args(tmp_path, conf), env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    why = (tmp_path / "units" / "nomade-why.service")
    assert why.stat().st_mode & 0o777 == 0o644
    assert f"ExecStart={Path(sys.executable).parent / 'nomade'} serve-why" in why.read_text()
    assert "systemctl daemon-reload && systemctl enable --now " + " ".join(ENABLE_ON_STORE_HOST) in res.output
    # --no-units: none
    res = CliRunner().invoke(cli, _args(tmp_path, conf, "--no-units", "--unit-dir", str(tmp_path / "u2")),
                             env=_env(tmp_path))
    assert res.exit_code == 0 and not (tmp_path / "u2").exists()


# ---------------------------------------------------------------- the units

def test_every_template_is_a_unit_and_every_unit_has_a_template():
    assert sorted(p.name for p in SYSTEMD.iterdir()) == sorted(UNITS)


@pytest.mark.parametrize("name", [n for n in UNITS if n.endswith(".service")])
def test_every_service_runs_as_root_the_stores_owner(name):
    text = (SYSTEMD / name).read_text()
    assert "\nUser=root\n" in text and "User=nomade" not in text
    assert "ExecStart=/usr/bin/env nomade " in text


def test_every_moving_part_has_a_unit():
    commands = {" ".join(ln.split()[2:]) for n in UNITS if n.endswith(".service")
                for ln in (SYSTEMD / n).read_text().splitlines() if ln.startswith("ExecStart=")}
    assert commands == {"serve-why", "ingest sacct", "ingest hooks", "ingest spool", "train --publish",
                        "models refresh-history", "record", "collect"}
    for n in UNITS:
        if n.endswith(".timer"):
            assert (SYSTEMD / n.replace(".timer", ".service")).is_file()


def test_units_start_the_prefix_nomade_and_name_a_site_config(tmp_path):
    prefix = tmp_path / "opt" / "bin"
    prefix.mkdir(parents=True)
    (prefix / "nomade").write_text("#!/bin/sh\n")
    units = plan_units(ROOT, str(prefix / "python"), config_file=Path("/srv/nomade.toml"))
    why = {u.name: u for u in units}["nomade-why.service"].text
    assert f"ExecStart={prefix / 'nomade'} serve-why\n" in why
    assert "[Service]\nEnvironment=NOMADE_CONFIG=/srv/nomade.toml\n" in why
    timer = {u.name: u for u in units}["nomade-ingest-sacct.timer"].text
    assert timer == (SYSTEMD / "nomade-ingest-sacct.timer").read_text()
    # nomade on a PYTHONPATH (no script next to the interpreter): python runs the CLI
    [u] = plan_units(ROOT, "/usr/bin/python3", pythonpath="/srv/nomade/src", names=["nomade-ingest-hooks.service"])
    assert "ExecStart=/usr/bin/python3 -c 'import nomade.cli.main as m; m.main()' ingest hooks" in u.text
    assert "Environment=PYTHONPATH=/srv/nomade/src" in u.text
    with pytest.raises(ConfigError, match="--unit nomade-nonesuch.service: not a nomade unit"):
        plan_units(ROOT, "/usr/bin/python3", names=["nomade-nonesuch.service"])


def test_print_units_one_unit_is_exactly_its_file(tmp_path):
    res = CliRunner().invoke(cli, ["install-slurm", "--print-units", "--unit", "nomade-record.service"])
    assert res.exit_code == 0, res.output
    want = plan_units(ROOT, sys.executable, names=["nomade-record.service"])[0].text
    assert res.output == want
    res = CliRunner().invoke(cli, ["install-slurm", "--print-units"])
    assert res.output.count("# ==> ") == len(UNITS)
    assert format_units(plan_units(ROOT, sys.executable)).count("\nExecStart=") == 8


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    for u in plan_units(ROOT, sys.executable):
        (tmp_path / u.name).write_text(u.text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + sorted(str(p) for p in tmp_path.iterdir()),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


# ---------------------------------------------------------------- docs/deployment.md says what is shipped

DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(UNITS))
def test_every_unit_is_documented(name):
    assert f"`{name}" in DEPLOYMENT, name


def test_the_documented_enable_line_is_the_one_printed():
    from nomade.install_units import enable_command
    assert enable_command(list(UNITS)) in DEPLOYMENT


def test_deployment_toml_examples_are_valid(tmp_path):
    import re

    from nomade.config import load_config
    blocks = re.findall(r"```toml\n(.*?)```", DEPLOYMENT, flags=re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        f = tmp_path / f"ex{i}.toml"
        f.write_text(block)
        load_config(str(f), environ={})


def test_cold_start_note_for_a_slurm_user_other_than_root(tmp_path):
    from nomade.config import load_config
    from nomade.install_slurm import plan_install
    conf = tmp_path / "slurm.conf"
    conf.write_text("SlurmUser=slurm\n")
    cfg = load_config(environ={"NOMADE_DATA_DIR": str(tmp_path / "data")})
    plan = plan_install(cfg, conf_path=conf, lib_dir=tmp_path / "lib", model_path=tmp_path / "m.lua",
                        python="/opt/nomade/bin/python")
    assert any(n.startswith("SlurmUser is slurm: after the first `nomade train --publish`, run install-slurm "
                            "again") for n in plan.notes), plan.notes
