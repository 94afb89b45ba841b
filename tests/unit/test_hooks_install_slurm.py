"""install-slurm: the plan, the dry run, and a real write into a temporary root with backups."""

import subprocess

from click.testing import CliRunner

from nomade.cli.main import cli
from nomade.config import load_config
from nomade.install_slurm import BEGIN, END, apply_plan, new_conf_text, plan_install


def _plan(tmp_path, conf_text="ClusterName=lab\n"):
    conf = tmp_path / "etc" / "slurm" / "slurm.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(conf_text)
    cfg = load_config(environ={"NOMADE_DATA_DIR": str(tmp_path / "data"),
                               "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
                               "NOMADE_PRIVACY_SOCKET": str(tmp_path / "sock" / "why.sock")})
    return conf, plan_install(cfg, conf_path=conf, lib_dir=tmp_path / "lib", model_path=tmp_path / "m" / "model.lua",
                              python="/opt/py/bin/python", log_file=tmp_path / "log" / "hooks.log",
                              config_file=tmp_path / "nomade.toml")


def test_plan_and_apply_with_backup(tmp_path):
    conf, plan = _plan(tmp_path)
    assert "JobSubmitPlugins=lua" in plan.conf_lines and f"Prolog={tmp_path}/lib/prolog" in plan.conf_lines
    done = apply_plan(plan, stamp="S1")
    text = conf.read_text()
    assert text.startswith("ClusterName=lab\n") and BEGIN in text and END in text
    assert (tmp_path / "etc" / "slurm" / "slurm.conf.nomade-backup-S1").read_text() == "ClusterName=lab\n"
    lua = (tmp_path / "etc" / "slurm" / "job_submit.lua").read_text()
    assert f'local MODEL_PATH = "{tmp_path}/m/model.lua"' in lua
    prolog = (tmp_path / "lib" / "prolog")
    assert "NOMADE_PYTHON=/opt/py/bin/python" in prolog.read_text() and prolog.stat().st_mode & 0o777 == 0o755
    assert subprocess.run(["sh", "-n", str(prolog)]).returncode == 0
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    # idempotent: a second run changes nothing and keeps one block
    _, plan2 = _plan_again(tmp_path, conf)
    done2 = apply_plan(plan2, stamp="S2")
    assert conf.read_text().count(BEGIN) == 1
    assert not any(d.startswith("wrote") for d in done2), done2


def _plan_again(tmp_path, conf):
    cfg = load_config(environ={"NOMADE_DATA_DIR": str(tmp_path / "data"),
                               "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
                               "NOMADE_PRIVACY_SOCKET": str(tmp_path / "sock" / "why.sock")})
    return conf, plan_install(cfg, conf_path=conf, lib_dir=tmp_path / "lib", model_path=tmp_path / "m" / "model.lua",
                              python="/opt/py/bin/python", log_file=tmp_path / "log" / "hooks.log",
                              config_file=tmp_path / "nomade.toml")


def test_site_lines_are_conflicts_not_overwritten(tmp_path):
    conf, plan = _plan(tmp_path, "Prolog=/site/prolog\nJobSubmitPlugins=pbs\n")
    assert not any(l.startswith("Prolog=") for l in plan.conf_lines)
    assert any("Prolog=/site/prolog" in c for c in plan.conflicts)
    assert any("JobSubmitPlugins=pbs" in c for c in plan.conflicts)


def test_new_conf_text_replaces_block():
    old = f"A=1\n{BEGIN}\nProlog=/x\n{END}\nB=2\n"
    assert new_conf_text(old, ["Prolog=/y"]) == f"A=1\nB=2\n\n{BEGIN}\nProlog=/y\n{END}\n"


def test_dry_run_writes_nothing(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lab\n")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "install-slurm", "--dry-run",
                                   "--slurm-conf", str(conf), "--lib-dir", str(tmp_path / "lib")])
    assert res.exit_code == 0, res.output
    assert "JobSubmitPlugins=lua" in res.output and "mode 0755" in res.output and "(dry run" in res.output
    assert conf.read_text() == "ClusterName=lab\n" and not (tmp_path / "lib").exists()
