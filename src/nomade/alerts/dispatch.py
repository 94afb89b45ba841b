"""Send groups through channels: each channel in its own thread, so a dead or slow channel never
delays the others; each (channel, group) tried up to ``attempts`` times with ``backoff_s``
between tries (its last value repeats).

Once a channel has failed every attempt for one group in a call, its remaining groups of that
call are not tried (they are reported undelivered with the same error, attempts 0): a dead SMTP
server costs one group's retries per pass, not every group's. So ``deliver`` returns within
about ``attempts * timeout_s + sum(backoff)`` per channel, whatever the number of groups.
"""

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence

from .channels.base import Channel, one_line
from .notification import DeliveryError, Group


@dataclass
class Delivery:
    channel: str
    group_key: str
    ok: bool
    attempts: int
    error: str


def _pause(backoff_s: Sequence[float], i: int) -> float:
    if not backoff_s:
        return 0.0
    return max(float(backoff_s[min(i, len(backoff_s) - 1)]), 0.0)


def _try(channel: Channel, group: Group, attempts: int, backoff_s: Sequence[float],
         timeout_s: float, sleep: Callable[[float], None]) -> Delivery:
    error = ""
    for i in range(attempts):
        if i:
            sleep(_pause(backoff_s, i - 1))
        try:
            channel.send(group, timeout_s)
            return Delivery(channel.name, group.key, True, i + 1, "")
        except DeliveryError as exc:
            error = one_line(exc, 500)
        except Exception as exc:  # noqa: BLE001 (a broken channel must not take the others down)
            error = one_line(f"{channel.name}: {type(exc).__name__}: {exc}", 500)
    return Delivery(channel.name, group.key, False, attempts, error)


def _channel_worker(channel: Channel, groups: Sequence[Group], attempts: int,
                    backoff_s: Sequence[float], timeout_s: float, out: List[Delivery],
                    sleep: Callable[[float], None]) -> None:
    down = ""
    for group in groups:
        if down:
            out.append(Delivery(channel.name, group.key, False, 0, f"not tried, channel down: {down}"))
            continue
        d = _try(channel, group, attempts, backoff_s, timeout_s, sleep)
        out.append(d)
        if not d.ok:
            down = d.error


def deliver(channels: Sequence[Channel], groups: Sequence[Group], *, attempts: int = 3,
            backoff_s: Sequence[float] = (0.5, 1.0), timeout_s: float = 10.0,
            sleep: Callable[[float], None] = time.sleep) -> List[Delivery]:
    """Send every group through every channel; one Delivery per (channel, group), in the order
    of ``channels`` then ``groups``."""
    attempts = max(int(attempts), 1)
    results: List[List[Delivery]] = [[] for _ in channels]
    threads = [threading.Thread(target=_channel_worker, name=f"nomade-alert-{c.name}", daemon=True,
                                args=(c, groups, attempts, backoff_s, timeout_s, results[i], sleep))
               for i, c in enumerate(channels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [d for per_channel in results for d in per_channel]
