"""What the engine hands to delivery: one ``Notification`` per alert that changed or repeats,
grouped per rule and cluster into a ``Group`` (one message per group and channel).

Every text field may hold hostile text (labels come from job names, mount points, node reasons):
the channels escape or strip it for their own format; nothing here trusts it.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from ..errors import NomadeError

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("firing", "resolved", "nodata", "error", "test")


class DeliveryError(NomadeError):
    """A channel could not deliver a group (one line: channel, target, why)."""


@dataclass(frozen=True)
class Notification:
    fingerprint: str
    rule: str
    severity: str                      # info | warning | critical
    status: str                        # firing | resolved | nodata | error | test
    cluster: str
    labels: Dict[str, str]
    summary: str                       # one line, numbers in words
    description: str                   # may be ""
    starts_at: float
    ends_at: Optional[float] = None
    value: Optional[float] = None
    alert_id: Optional[int] = None
    owner_email: Optional[str] = None  # the job owner's early warning (email channel only)


@dataclass(frozen=True)
class Group:
    key: str                           # f"{rule}/{cluster}"
    rule: str
    cluster: str
    severity: str                      # the highest in the group
    notifications: Tuple[Notification, ...]

    @property
    def status(self) -> str:
        """"firing" when any notification is not resolved, else "resolved"."""
        return "resolved" if all(n.status == "resolved" for n in self.notifications) else "firing"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def group_notifications(notifications: Iterable[Notification]) -> List[Group]:
    """One Group per (rule, cluster), in first-seen order; its severity is the highest."""
    by_key: Dict[Tuple[str, str], List[Notification]] = {}
    for n in notifications:
        by_key.setdefault((n.rule, n.cluster), []).append(n)
    groups = []
    for (rule, cluster), items in by_key.items():
        top = max(items, key=lambda n: severity_rank(n.severity)).severity
        groups.append(Group(f"{rule}/{cluster}", rule, cluster, top, tuple(items)))
    return groups
