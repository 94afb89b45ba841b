"""Leakage-free features: what is known about a job at the moment it is scored."""
