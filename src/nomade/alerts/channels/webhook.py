"""The generic JSON webhook: each group POSTed to every URL of ``alerts.webhook_urls`` in the
Alertmanager webhook format (``payload.webhook_payload``; docs/alerts.md "Channels")."""

from typing import Any, List

from ...errors import ConfigError
from ..notification import DeliveryError, Group
from . import _http
from .base import Channel, http_url, optional_http_url, register
from .payload import webhook_payload


@register
class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        urls = cfg.get("alerts.webhook_urls")
        if not urls:
            raise ConfigError("alerts.webhook_urls is empty: no webhook to send to")
        self.urls: List[str] = [http_url(u, f"alerts.webhook_urls[{i}]") for i, u in enumerate(urls)]
        self.external_url = optional_http_url(cfg, "alerts.external_url")

    def send(self, group: Group, timeout_s: float) -> None:
        payload = webhook_payload(group, external_url=self.external_url)
        errors = []
        for url in self.urls:
            try:
                _http.post_json(url, payload, timeout_s, "webhook")
            except DeliveryError as exc:
                errors.append(str(exc))
        if errors:
            raise DeliveryError("; ".join(errors))
