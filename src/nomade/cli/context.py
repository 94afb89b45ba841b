"""What every command gets: the effective configuration (loaded once, lazily) and output helpers."""

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import click

from ..config import Config, load_config
from ..errors import StoreError


@dataclass
class AppContext:
    config_path: Optional[str] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    debug: bool = False
    _config: Optional[Config] = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, self.overrides)
        return self._config

    def lenient_config(self, prog: str, quiet: bool = False) -> Config:
        """The configuration for a part that must keep running (the why-service, collect,
        users' nomade-why): a broken setting keeps its default; what was ignored is said once on
        stderr (the unit's log), unless ``quiet`` (a user cannot fix the site's file; `nomade
        config check` shows it to admins). Used instead of ``config`` for the rest of the command."""
        if self._config is None:
            self._config = load_config(self.config_path, self.overrides, lenient=True)
            for line in [] if quiet else self._config.problems:
                click.echo(f"{prog}: config problem, default used: {line}", err=True)
        return self._config

    def store(self, migrate: bool = True, readonly: bool = False):
        from ..store.db import store_from_config, store_location
        cfg = self.config
        location = store_location(cfg)
        if os.getuid() != 0 and isinstance(location, Path):   # PostgreSQL: its roles decide
            refused = store_refusal_for_user(location, cfg.get("privacy.admin_group"), readonly)
            if refused is not None:
                raise refused
        return store_from_config(cfg, migrate=migrate, readonly=readonly)


# the --direct/--service option of nomade-why, report and similarity --find-similar
# (whyservice.client.reads_store)
DIRECT_HELP = ("Read the store directly, or ask the nomade-why service. Default: direct for root "
               "and for a caller who can read the store, the service for everyone else.")


def ask_hint(admin_group: str) -> str:
    """What a user without access to the store can do instead."""
    who = f"your cluster's administrators (group {admin_group})" if admin_group else "your cluster's administrators"
    return (f"ask about your own jobs through the nomade-why service: `nomade-why JOBID`; "
            f"for anything else, or if that service is down, ask {who}")


def store_refusal_for_user(path: Path, admin_group: str, readonly: bool) -> Optional[StoreError]:
    """For a caller who is not root: the one-line error when the store at ``path`` is not theirs
    to read (the site's store belongs to the service account), or, for a command that only
    reads, does not exist; None when the command may go on (their own store, or one it creates)."""
    try:
        os.stat(path)
    except PermissionError:
        hint = ask_hint(admin_group) if readonly else (
            "this command is for administrators: run it as root, the store's owner; " + ask_hint(admin_group))
        return StoreError(f"nomade's job data ({path}) is kept by the nomade service and is not "
                          "readable by you", hint=hint)
    except FileNotFoundError:
        if not readonly:
            return None
        return StoreError(f"no nomade store at {path}", hint=ask_hint(admin_group))
    except OSError:
        return None  # anything stranger: the store's own error says it
    if os.access(path, os.R_OK | (0 if readonly else os.W_OK)):
        return None
    hint = ask_hint(admin_group) if readonly else (
        "this command is for administrators: run it as root, the store's owner; " + ask_hint(admin_group))
    return StoreError(f"nomade's job data ({path}) is kept by the nomade service and is not "
                      f"{'readable' if readonly else 'writable'} by you", hint=hint)


pass_app = click.make_pass_decorator(AppContext)


def needs_train_extra(command):
    """A command that trains: one clear line before anything else when the [train] extra is not
    installed (nomade.train.extra), instead of an ImportError half-way through."""
    @functools.wraps(command)
    def checked(*args, **kwargs):
        from ..train.extra import require_train_extra
        require_train_extra(f"`{click.get_current_context().command_path}`")
        return command(*args, **kwargs)
    return checked


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def is_terminal() -> bool:
    return sys.stderr.isatty()
