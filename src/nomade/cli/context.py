"""What every command gets: the effective configuration (loaded once, lazily) and output helpers."""

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


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def is_terminal() -> bool:
    return sys.stderr.isatty()
