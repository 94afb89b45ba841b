"""The local ``nomade-why`` service: a Unix socket that identifies each caller by SO_PEERCRED and
answers only about jobs the caller may see (own jobs; all for root and privacy.admin_group).
The store stays readable only by the service's user, so the check cannot be bypassed."""
