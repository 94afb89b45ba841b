"""Runtime-safe evaluation metrics and threshold selection (numpy only)."""
