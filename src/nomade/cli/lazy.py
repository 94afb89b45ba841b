"""A click group whose subcommands are imported only when used (keeps hook fast paths light)."""

import importlib
import importlib.util
from typing import Dict, List, Optional

import click


class LazyGroup(click.Group):
    """``lazy_commands`` maps a command name to "module:attribute" under nomade.cli."""

    def __init__(self, *args, lazy_commands: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> List[str]:
        present = {n for n, t in self.lazy_commands.items()
                   if importlib.util.find_spec(f"nomade.cli.{t.split(':')[0]}") is not None}
        return sorted(present | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in self.commands:
            return self.commands[name]
        target = self.lazy_commands.get(name)
        if target is None:
            return None
        mod, attr = target.split(":")
        if importlib.util.find_spec(f"nomade.cli.{mod}") is None:
            return None
        return getattr(importlib.import_module(f"nomade.cli.{mod}"), attr)
