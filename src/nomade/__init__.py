"""nomade: warns SLURM users, before it costs them, that a job is likely to fail - and why."""

__version__ = "0.1.0"

__all__ = ["Nomade", "__version__"]


def __getattr__(name):
    """``nomade.Nomade`` without importing the API (and its configuration machinery) up front:
    hooks and nomade-why import ``nomade`` and must stay fast."""
    if name == "Nomade":
        from .api import Nomade
        return Nomade
    raise AttributeError(f"module 'nomade' has no attribute {name!r}")
