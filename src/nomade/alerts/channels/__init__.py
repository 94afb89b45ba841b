"""Alert delivery channels: email, slack, webhook, alertmanager (docs/alerts.md "Channels").

``registry()`` maps each name to its class (each module registers its class with ``@register``);
``enabled_channels(cfg)`` builds the ones the settings turn on. Building a channel checks its
settings: a bad one (a file:// URL, an address with a newline, a world-readable password file)
is a ConfigError of one line naming the key.
"""

from typing import Any, Dict, List, Type

from .base import Channel, builtin

# which setting turns each channel on: a true bool, a non-empty list or a non-empty string
ENABLED_BY = {
    "email": "alerts.email_enabled",
    "slack": "alerts.slack_enabled",
    "webhook": "alerts.webhook_urls",
    "alertmanager": "alerts.alertmanager_url",
}


def registry() -> Dict[str, Type[Channel]]:
    from . import alertmanager, email, slack, webhook  # noqa: F401 (importing them registers them)
    return dict(sorted(builtin().items()))


def enabled_channels(cfg: Any) -> List[Channel]:
    """The channels the settings turn on, built (and so checked) from ``cfg``."""
    return [cls(cfg) for name, cls in registry().items() if name in ENABLED_BY and cfg.get(ENABLED_BY[name])]
