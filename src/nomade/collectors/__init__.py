"""The monitoring engine's collectors (docs/monitoring.md). ``base`` is the contract."""
