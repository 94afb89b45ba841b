"""Slack incoming webhook: one message per group, ``text`` (the notification fallback) plus
``blocks``. Every piece of alert text is escaped as Slack requires (``&`` ``<`` ``>``), so a
label cannot become a link or an ``<!channel>`` mention."""

from typing import Any, Dict, List

from ...errors import ConfigError
from ..notification import Group, Notification
from . import _http
from .base import Channel, http_url, one_line, register

MAX_SECTIONS = 40            # Slack allows 50 blocks per message
_SECTION_CHARS = 2900        # of Slack's 3000 per section text
_ICON = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}


def slack_escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _section(n: Notification) -> Dict[str, Any]:
    lines = [f"*{n.status.upper()}* ({n.severity}) {slack_escape(one_line(n.summary, 500))}"]
    if n.description:
        lines.append(slack_escape(n.description.replace("\r", "")))
    if n.labels:
        pairs = ", ".join(f"{one_line(k, 60)}={one_line(v, 200)}" for k, v in sorted(n.labels.items()))
        lines.append(slack_escape(pairs).replace("`", "'"))
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), _SECTION_CHARS)}}


def slack_payload(group: Group) -> Dict[str, Any]:
    ns = group.notifications
    firing = sum(1 for n in ns if n.status != "resolved")
    head = f"{group.rule} on {group.cluster}" if group.cluster else group.rule
    counts = f"{firing} firing, {len(ns) - firing} resolved"
    text = f"[{group.severity.upper()}] {one_line(head, 200)}: {counts}"
    blocks: List[Dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"{group.severity.upper()}: {one_line(head, 200)}", 150)}},
    ]
    blocks += [_section(n) for n in ns[:MAX_SECTIONS]]
    more = f"and {len(ns) - MAX_SECTIONS} more; " if len(ns) > MAX_SECTIONS else ""
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{_ICON.get(group.severity, '')} {more}{counts} (nomade)".strip()}]})
    return {"text": slack_escape(text), "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


@register
class SlackChannel(Channel):
    name = "slack"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        url = cfg.get("alerts.slack_webhook")
        if not url:
            raise ConfigError("alerts.slack_webhook is empty: set the Slack incoming-webhook URL")
        self.url = http_url(url, "alerts.slack_webhook")

    def send(self, group: Group, timeout_s: float) -> None:
        _http.post_json(self.url, slack_payload(group), timeout_s, "slack")
