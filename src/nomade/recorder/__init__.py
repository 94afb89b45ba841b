"""The node recorder: samples running Slurm jobs from cgroups and /proc into a node-local spool.

Runtime code: stdlib only, Python 3.9. See docs/recorder.md.
"""
