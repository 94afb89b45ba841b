"""install-slurm: the plan, the dry run, and a real write into a temporary root with backups."""

import os
import subprocess

from click.testing import CliRunner

from nomade.cli.main import cli
from nomade.config import load_config
from nomade.install_slurm import BEGIN, END, apply_plan, format_plan, new_conf_text, plan_install


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
    apply_plan(plan, stamp="S1")
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


# ---------------------------------------------------------------- what install-slurm owns

def _mode(p):
    return p.stat().st_mode & 0o7777


def _plan_with(tmp_path, conf_text="ClusterName=lab\n", log_file=None, bundle=None, data=None):
    conf = tmp_path / "etc" / "slurm" / "slurm.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(conf_text)
    env = {"NOMADE_DATA_DIR": str(data or tmp_path / "data"),
           "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run" / "nomade" / "jobs"),
           "NOMADE_PRIVACY_SOCKET": str(tmp_path / "sock" / "why.sock")}
    if bundle is not None:
        env["NOMADE_MODEL_BUNDLE"] = str(bundle)
    cfg = load_config(environ=env)
    return plan_install(cfg, conf_path=conf, lib_dir=tmp_path / "lib", model_path=tmp_path / "m" / "model.lua",
                        python="/opt/py/bin/python", log_file=log_file or tmp_path / "log" / "hooks.log",
                        config_file=tmp_path / "nomade.toml")


def test_existing_directories_are_left_exactly_as_they_are(tmp_path):
    """--log-file /var/log/x.log made install-slurm chmod /var/log to 0750."""
    varlog = tmp_path / "varlog"
    varlog.mkdir()
    os.chmod(varlog, 0o755)
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    if os.geteuid() == 0:
        os.chown(varlog, 4321, 4322)
    before = {p: (p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in (varlog, data)}
    done = apply_plan(_plan_with(tmp_path, log_file=varlog / "x.log"), stamp="S1")
    after = {p: (p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in (varlog, data)}
    assert after == before
    assert f"kept existing directory {data} (0755; nomade would create it 0700)" in done


def test_new_directories_get_their_documented_modes(tmp_path):
    old = os.umask(0o077)
    try:
        apply_plan(_plan_with(tmp_path), stamp="S1")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "lib") == 0o755 and _mode(tmp_path / "log") == 0o750
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(tmp_path / "run" / "nomade" / "jobs") == 0o711
    assert _mode(tmp_path / "run") == 0o755 and _mode(tmp_path / "run" / "nomade") == 0o755
    assert _mode(tmp_path / "lib" / "prolog") == 0o755


def test_site_conf_keeps_its_mode(tmp_path):
    plan = _plan_with(tmp_path)
    os.chmod(plan.conf_path, 0o640)
    apply_plan(plan, stamp="S1")
    assert BEGIN in plan.conf_path.read_text() and _mode(plan.conf_path) == 0o640
    assert _mode(plan.conf_path.with_name("slurm.conf.nomade-backup-S1")) == 0o640


def _bundle(tmp_path):
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "submit_model.lua").write_text("return {format = 1, predict = function() return 0 end}\n")
    return b


def test_model_file_readable_by_slurm_user_only(tmp_path):
    import pwd
    user = pwd.getpwuid(65534).pw_name if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    plan = _plan_with(tmp_path, conf_text=f"SlurmUser={user}\n", bundle=_bundle(tmp_path))
    model = tmp_path / "m" / "model.lua"
    assert f"{model}  mode 0640  {user}" in format_plan(plan)
    apply_plan(plan, stamp="S1")
    st = model.stat()
    assert st.st_mode & 0o777 == 0o640 and st.st_uid == pwd.getpwnam(user).pw_uid
    assert st.st_gid == pwd.getpwnam(user).pw_gid


def test_old_world_readable_model_is_fixed_and_its_backup_not_readable(tmp_path):
    bundle = _bundle(tmp_path)
    model = tmp_path / "m" / "model.lua"
    model.parent.mkdir()
    model.write_text("-- an old model with names\n")
    os.chmod(model, 0o644)
    done = apply_plan(_plan_with(tmp_path, bundle=bundle), stamp="S1")
    assert _mode(model) == 0o640
    assert _mode(model.with_name("model.lua.nomade-backup-S1")) == 0o640
    # the same content with a loose mode is rewritten too
    os.chmod(model, 0o644)
    done = apply_plan(_plan_with(tmp_path, bundle=bundle), stamp="S2")
    assert _mode(model) == 0o640 and any(d.startswith(f"wrote {model}") for d in done)


def test_unknown_slurm_user_is_a_config_error(tmp_path):
    import pytest
    from nomade.errors import ConfigError
    plan = _plan_with(tmp_path, conf_text="SlurmUser=no-such-user-xyz\n", bundle=_bundle(tmp_path))
    with pytest.raises(ConfigError, match="SlurmUser=no-such-user-xyz"):
        apply_plan(plan, stamp="S1")
