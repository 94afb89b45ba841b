"""nomade: warns SLURM users, before it costs them, that a job is likely to fail - and why."""

__version__ = "0.1.0"
