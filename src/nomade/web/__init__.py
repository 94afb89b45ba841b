"""The web dashboard (``nomade dashboard``, the ``web`` extra): ``app.create_app(cfg)``, identity
and sessions in ``auth``, page data in ``queries``, templates and static files as package data.
See docs/dashboard.md."""
