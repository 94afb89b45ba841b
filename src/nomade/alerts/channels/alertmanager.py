"""Forwarding to an existing Alertmanager through its v2 API (``POST <url>/api/v2/alerts``), for
sites that already route alerts there. A resolved alert is sent with endsAt = now; a firing one
with endsAt = now + ``alerts.alertmanager_ttl_s`` (docs/alerts.md "Channels")."""

import time
from typing import Any

from ...errors import ConfigError
from ..notification import Group
from . import _http
from .base import Channel, http_url, optional_http_url, register
from .payload import alertmanager_alerts


@register
class AlertmanagerChannel(Channel):
    name = "alertmanager"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        base = cfg.get("alerts.alertmanager_url")
        if not base:
            raise ConfigError("alerts.alertmanager_url is empty: no Alertmanager to forward to")
        self.url = http_url(base, "alerts.alertmanager_url").rstrip("/") + "/api/v2/alerts"
        self.ttl_s = float(cfg.get("alerts.alertmanager_ttl_s"))
        if self.ttl_s <= 0:
            raise ConfigError(f"alerts.alertmanager_ttl_s = {self.ttl_s:g}: expected a number > 0")
        self.external_url = optional_http_url(cfg, "alerts.external_url")

    def send(self, group: Group, timeout_s: float) -> None:
        body = alertmanager_alerts(group, now=time.time(), ttl_s=self.ttl_s, external_url=self.external_url)
        _http.post_json(self.url, body, timeout_s, "alertmanager")
