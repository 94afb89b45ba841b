"""The alert engine: rules, states, delivery (docs/alerts.md)."""
