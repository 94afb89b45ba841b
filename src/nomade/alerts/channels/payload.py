"""The Alertmanager formats nomade speaks: the webhook payload (version 4, what Alertmanager posts
to its webhook receivers, so a receiver written for Alertmanager reads nomade's too) and the list
of alerts Alertmanager's v2 API takes (``POST /api/v2/alerts``). Pure functions of a Group.

Label names are made Prometheus-valid (``[A-Za-z_][A-Za-z0-9_]*``; others become ``_``), empty
label values are left out (Alertmanager treats them as absent), and every string is made valid
UTF-8; the values themselves are kept (JSON escapes them).
"""

import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from ..notification import Group, Notification

WEBHOOK_VERSION = "4"
RECEIVER = "nomade"
ZERO_TIME = "0001-01-01T00:00:00Z"       # Alertmanager's endsAt of an alert still firing
_BAD_NAME_CHAR = re.compile(r"[^A-Za-z0-9_]")


def rfc3339(ts: float) -> str:
    """``2026-12-03T09:20:16.250Z``."""
    text = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def utf8(text: object) -> str:
    """``text`` as a string that encodes to UTF-8 (a lone surrogate from undecodable bytes
    becomes "?")."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


def label_name(name: str) -> str:
    out = _BAD_NAME_CHAR.sub("_", utf8(name))
    return "_" + out if out[:1].isdigit() else out


def alert_labels(group: Group, n: Notification) -> Dict[str, str]:
    """The notification's labels plus alertname, cluster and severity (which win)."""
    labels: Dict[str, str] = {}
    for key, value in sorted(n.labels.items()):
        name, text = label_name(key), utf8(value)
        if name and text:
            labels[name] = text
    labels.update({"alertname": utf8(n.rule or group.rule), "severity": utf8(n.severity)})
    cluster = utf8(n.cluster or group.cluster)
    if cluster:
        labels["cluster"] = cluster
    return labels


def alert_annotations(n: Notification) -> Dict[str, str]:
    """summary, description (when not empty), value, nomade_state (firing, resolved, nodata, error
    or test: Alertmanager knows only firing and resolved) and nomade_alert_id."""
    out = {"summary": utf8(n.summary), "nomade_state": utf8(n.status)}
    if n.description:
        out["description"] = utf8(n.description)
    if n.value is not None:
        out["value"] = f"{n.value:g}"
    if n.alert_id is not None:
        out["nomade_alert_id"] = str(n.alert_id)
    return out


def am_status(n: Notification) -> str:
    return "resolved" if n.status == "resolved" else "firing"


def _common(dicts: List[Dict[str, str]]) -> Dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def webhook_payload(group: Group, *, external_url: str = "", now: Optional[float] = None) -> Dict[str, Any]:
    """The JSON a webhook receives for one group (docs/alerts.md "Channels")."""
    now_ts = datetime.now(timezone.utc).timestamp() if now is None else now
    alerts = []
    for n in group.notifications:
        resolved = am_status(n) == "resolved"
        alerts.append({
            "status": am_status(n),
            "labels": alert_labels(group, n),
            "annotations": alert_annotations(n),
            "startsAt": rfc3339(n.starts_at),
            "endsAt": rfc3339(n.ends_at if n.ends_at is not None else now_ts) if resolved else ZERO_TIME,
            "generatorURL": utf8(external_url),
            "fingerprint": utf8(n.fingerprint),
        })
    group_labels = {"alertname": utf8(group.rule)}
    if group.cluster:
        group_labels["cluster"] = utf8(group.cluster)
    return {
        "version": WEBHOOK_VERSION,
        "groupKey": utf8(group.key),
        "truncatedAlerts": 0,
        "status": group.status,
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": utf8(external_url),
        "alerts": alerts,
    }


def alertmanager_alerts(group: Group, *, now: float, ttl_s: float,
                        external_url: str = "") -> List[Dict[str, Any]]:
    """The body of ``POST /api/v2/alerts``: a resolved alert ends now; a firing one (and no-data,
    error) ends ``ttl_s`` from now unless sent again; a test alert ends in five minutes."""
    out = []
    for n in group.notifications:
        if n.status == "resolved":
            ends = now
        elif n.status == "test":
            ends = now + 300.0
        else:
            ends = now + ttl_s
        item: Dict[str, Any] = {
            "labels": alert_labels(group, n),
            "annotations": alert_annotations(n),
            "startsAt": rfc3339(min(n.starts_at, now)),
            "endsAt": rfc3339(ends),
        }
        if external_url:
            item["generatorURL"] = utf8(external_url)
        out.append(item)
    return out
