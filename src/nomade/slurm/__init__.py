"""Reading what Slurm prints: ``sacct -P`` text, ``sacct --json``, and their field values."""
