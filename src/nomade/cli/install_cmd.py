"""``nomade install-slurm``: put nomade's job_submit.lua, hooks and systemd units in place (see
docs/deployment.md and docs/slurm.md)."""

from typing import Optional, Sequence

import click

from .context import AppContext, pass_app


@click.command("install-slurm")
@click.option("--dry-run", is_flag=True,
              help="Print the interpreter and the accounts that run it (checked), the files, permissions, "
                   "units and slurm.conf lines; write nothing.")
@click.option("--slurm-conf", default="/etc/slurm/slurm.conf", show_default=True, help="slurm.conf to edit.")
@click.option("--lib-dir", default="/etc/slurm/nomade", show_default=True, help="Where the hook entry scripts go.")
@click.option("--model-path", default="/etc/nomade/submit_model.lua", show_default=True,
              help="The submit-time model job_submit.lua loads.")
@click.option("--python", "python", default=None,
              help="Python the hooks and units run (default: this one). It must be at the same path, and "
                   "runnable by every user, on the compute nodes.")
@click.option("--pythonpath", default="", help="PYTHONPATH for the hooks' Python (when nomade is not installed in it).")
@click.option("--log-file", default="/var/log/nomade/hooks.log", show_default=True, help="Hook log.")
@click.option("--source", default=None, help="nomade source checkout holding lua/ and slurm_plugins/.")
@click.option("--no-mail", is_flag=True, help="Do not install the MailProg wrapper.")
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True,
              help="Where the systemd units and timers go.")
@click.option("--no-units", is_flag=True, help="Do not install the systemd units.")
@click.option("--unit", "units", multiple=True, metavar="NAME",
              help="Only this unit (repeatable), e.g. nomade-record.service; default: all.")
@click.option("--print-units", is_flag=True,
              help="Print the systemd units (filled in for this install) and exit; write nothing.")
@click.option("--force", is_flag=True,
              help="Install even when an account that runs a hook cannot run its interpreter.")
@pass_app
def install_slurm(app: AppContext, dry_run: bool, slurm_conf: str, lib_dir: str, model_path: str,
                  python: Optional[str], pythonpath: str, log_file: str, source: Optional[str], no_mail: bool,
                  unit_dir: str, no_units: bool, units: Sequence[str], print_units: bool, force: bool) -> None:
    """Install job_submit.lua, Prolog/Epilog/TaskProlog/MailProg entries, the slurm.conf block and
    the systemd units of the why-service and the timers.

    First it checks that root (Prolog, Epilog), SlurmUser (MailProg) and an unprivileged user
    (TaskProlog, nomade-why; checked as nobody) can run the interpreter and import nomade; it
    refuses otherwise (--force installs anyway).
    """
    import sys
    from pathlib import Path

    from ..errors import ConfigError
    from ..install_probe import probe_all, refusal
    from ..install_slurm import add_units, apply_plan, format_plan, plan_install, read_conf, slurm_user, source_dir
    from ..install_units import format_units, plan_units
    cfg = app.config
    python = python or sys.executable
    src = Path(source) if source else source_dir()
    config_file = cfg.file or Path("/etc/nomade/nomade.toml")
    planned_units = [] if no_units else plan_units(src, python, pythonpath=pythonpath, config_file=config_file,
                                                   names=units)
    if print_units:
        click.echo(format_units(planned_units))
        return
    plan = plan_install(cfg, conf_path=Path(slurm_conf), lib_dir=Path(lib_dir), model_path=Path(model_path),
                        python=python, config_file=config_file, log_file=Path(log_file), pythonpath=pythonpath,
                        source=src, mail=not no_mail)
    add_units(plan, planned_units, Path(unit_dir))
    results = probe_all(python, pythonpath, slurm_user(read_conf(Path(slurm_conf))), mail=not no_mail)
    plan.checks = [r.line() for r in results]
    click.echo(format_plan(plan))
    if dry_run:
        click.echo("(dry run: nothing written)")
        return
    refused = refusal(results, python)
    if refused and not force:
        raise ConfigError(f"install-slurm: nothing written: {refused}",
                          hint="install nomade into a prefix every user can run, see docs/deployment.md; "
                               "or --force")
    for line in apply_plan(plan):
        click.echo(line)
