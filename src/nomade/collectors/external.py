"""Running a collector's external tool: through the context's one door, skipped when absent.

``run_tool`` turns "the program is not installed here" into ``CollectorSkipped`` (one line) and
lets every other failure (non-zero exit, timeout) through as ``SlurmCommandError``."""

import shutil
from typing import Any, Sequence

from ..errors import SlurmCommandError
from .base import CollectContext, CollectorSkipped


def run_tool(ctx: CollectContext, argv: Sequence[str], timeout: float) -> Any:
    """``ctx.run(argv, timeout=timeout)``; CollectorSkipped when ``argv[0]`` is not on PATH."""
    try:
        return ctx.run(list(argv), timeout=timeout)
    except SlurmCommandError as exc:
        if exc.rc is None and shutil.which(argv[0]) is None:
            raise CollectorSkipped(f"{argv[0]} not found on PATH") from None
        raise


def clean_label(text: str, limit: int = 200) -> str:
    """User- or admin-written text made safe as a label value: control bytes to spaces, runs of
    blanks collapsed, at most ``limit`` characters."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())[:limit]


def setting(ctx: CollectContext, collector: str, key: str) -> Any:
    """``ctx.settings[key]``, or the default declared in nomade.settings when the context does not
    carry it (a context built by hand, as in tests)."""
    if key in ctx.settings:
        return ctx.settings[key]
    from ..settings import find

    return find(f"collectors.{collector}.{key}").default
