"""The ``nomade`` command group. Commands live in their own modules and are imported only when
used, so fast paths (hooks, nomade-why) do not pay for the rest. Errors are translated here, once:
a NomadeError becomes one line on stderr and exit 1; anything unexpected one line and exit 70."""

import os
import sys
from typing import List, Optional

import click

from .. import __version__
from ..errors import NomadeError
from .context import AppContext
from .lazy import LazyGroup

# command name -> "module:attribute" (modules under nomade.cli); one line per command group
COMMANDS = {
    "config": "config_cmd:config",
    "db": "db_cmd:db",
    "ingest": "ingest_cmd:ingest",
    "import": "import_cmd:import_",
    "export": "export_cmd:export",
    "jobs": "jobs_cmd:jobs",
    "demo": "demo_cmd:demo",
    "train": "train_cmd:train",
    "evaluate": "evaluate_cmd:evaluate",
    "models": "models_cmd:models",
    "readiness": "readiness_cmd:readiness",
    "record": "record_cmd:record",
    "report": "report_cmd:report",
    "why": "why_cmd:why",
    "install-slurm": "install_cmd:install_slurm",
    "hook": "hook_cmd:hook",
    "serve-why": "why_service_cmd:serve_why",
    "status": "status_cmd:status",
    "disk": "disk_cmd:disk",
    "collect": "collect_cmd:collect",
    "alerts": "alerts_cmd:alerts",
    "syscheck": "syscheck_cmd:syscheck",
    "predict": "predict_cmd:predict",
    "queue": "sections_cmd:queue",
    "nodes": "sections_cmd:nodes",
    "licenses": "sections_cmd:licenses",
    "init": "init_cmd:init",
    "ml": "ml_cmd:ml",
    "metrics": "metrics_cmd:metrics",
    "dashboard": "dashboard_cmd:dashboard",
    "similarity": "similarity_cmd:similarity",
    "profiles": "profiles_cmd:profiles",
    "recommend": "recommend_cmd:recommend",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nomade")
@click.option("--config", "config_path", type=str, default=None, metavar="FILE",
              help="TOML config file (else $NOMADE_CONFIG, else /etc/nomade/nomade.toml).")
@click.option("--data-dir", type=str, default=None, metavar="DIR",
              help="Where the store, models and reports live (else $NOMADE_DATA_DIR).")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Optional[str], data_dir: Optional[str], debug: bool) -> None:
    """nomade: predicts, before it costs you, that a Slurm job is likely to fail - and why."""
    ctx.obj = AppContext(config_path=config_path, overrides={"data_dir": data_dir}, debug=debug)


def run_cli(command: click.Command, args: Optional[List[str]] = None, prog_name: str = "nomade") -> int:
    """Invoke a click command with nomade's error translation. Returns the exit code."""
    debug = "--debug" in (args if args is not None else sys.argv[1:])
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
        return 0
    except NomadeError as exc:
        msg = str(exc).replace("\n", " ")
        hint = f" ({exc.hint})" if exc.hint else ""
        click.echo(f"{prog_name}: error: {msg}{hint}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        click.echo(f"{prog_name}: interrupted", err=True)
        return 130
    except PermissionError as exc:  # not nomade's bug: an account without access to a file
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"{prog_name}: error: permission denied{where} ({permission_hint()})", err=True)
        return 1
    except Exception as exc:  # the one place unexpected errors are caught: never a traceback
        if debug:
            raise
        one_line = str(exc).replace("\n", " ")
        click.echo(f"{prog_name}: internal error: {type(exc).__name__}: {one_line} "
                   f"(re-run with --debug for a traceback)", err=True)
        return 70


def permission_hint() -> str:
    """What to do about a file this account may not open."""
    if os.getuid() == 0:
        return "check the owner and mode of that file and of its directories"
    return ("nomade's data belongs to the nomade service: ask about your own jobs through the nomade-why "
            "service (`nomade-why JOBID`), or ask your cluster's administrators")


def main() -> None:
    sys.exit(run_cli(cli))
