"""What every command gets: the effective configuration (loaded once, lazily) and output helpers."""

import functools
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import click

from ..config import Config, load_config


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

    def store(self, migrate: bool = True, readonly: bool = False):
        from ..store.db import store_from_config
        return store_from_config(self.config, migrate=migrate, readonly=readonly)


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
