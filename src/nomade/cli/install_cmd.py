"""``nomade install-slurm``: put nomade's job_submit.lua and hooks in place (see docs/slurm.md)."""

from typing import Optional

import click

from .context import AppContext, pass_app


@click.command("install-slurm")
@click.option("--dry-run", is_flag=True, help="Print the files, permissions and slurm.conf lines; write nothing.")
@click.option("--slurm-conf", default="/etc/slurm/slurm.conf", show_default=True, help="slurm.conf to edit.")
@click.option("--lib-dir", default="/etc/slurm/nomade", show_default=True, help="Where the hook entry scripts go.")
@click.option("--model-path", default="/etc/nomade/submit_model.lua", show_default=True,
              help="The submit-time model job_submit.lua loads.")
@click.option("--python", "python", default=None, help="Python the hooks run (default: this one).")
@click.option("--pythonpath", default="", help="PYTHONPATH for the hooks' Python (when nomade is not installed in it).")
@click.option("--log-file", default="/var/log/nomade/hooks.log", show_default=True, help="Hook log.")
@click.option("--source", default=None, help="nomade source checkout holding lua/ and slurm_plugins/.")
@click.option("--no-mail", is_flag=True, help="Do not install the MailProg wrapper.")
@pass_app
def install_slurm(app: AppContext, dry_run: bool, slurm_conf: str, lib_dir: str, model_path: str,
                  python: Optional[str], pythonpath: str, log_file: str, source: Optional[str], no_mail: bool) -> None:
    """Install job_submit.lua, Prolog/Epilog/TaskProlog/MailProg entries and the slurm.conf block."""
    from pathlib import Path

    from ..install_slurm import apply_plan, format_plan, plan_install
    cfg = app.config
    plan = plan_install(cfg, conf_path=Path(slurm_conf), lib_dir=Path(lib_dir), model_path=Path(model_path),
                        python=python, config_file=cfg.file or Path("/etc/nomade/nomade.toml"),
                        log_file=Path(log_file), pythonpath=pythonpath, source=Path(source) if source else None, mail=not no_mail)
    click.echo(format_plan(plan))
    if dry_run:
        click.echo("(dry run: nothing written)")
        return
    for line in apply_plan(plan):
        click.echo(line)
