"""Readers that turn outside job data (Slurm accounting, workload traces) into JobRecords."""
