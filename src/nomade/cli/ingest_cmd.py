"""``nomade ingest``: load job outcomes and samples into the store."""

import click

from .lazy import LazyGroup

SUBCOMMANDS = {
    "sacct": "ingest_sacct_cmd:sacct",
    "spool": "ingest_spool_cmd:spool",
    "hooks": "ingest_hooks_cmd:hooks",
}


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS)
def ingest() -> None:
    """Load Slurm accounting and node/hook spool records into the store."""
