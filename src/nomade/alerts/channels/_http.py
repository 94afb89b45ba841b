"""POST a JSON document with urllib: a timeout, no redirects followed (a redirect could lead a
POST elsewhere), and every failure as one DeliveryError line naming the host only."""

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from ... import __version__
from ..notification import DeliveryError
from .base import one_line, where


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None       # urllib then raises HTTPError for the 3xx


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, payload: Any, timeout_s: float, what: str) -> int:
    """POST ``payload`` as JSON to ``url`` (already checked to be http/https); returns the HTTP
    status (2xx). ``what`` names the channel in the error line."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 (http/https only, checked at load)
        "Content-Type": "application/json; charset=utf-8", "User-Agent": f"nomade/{__version__}"})
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            resp.read(65536)
            return resp.status
    except urllib.error.HTTPError as exc:
        detail = one_line(exc.read(300).decode("utf-8", "replace"), 120) if exc.fp else ""
        raise DeliveryError(f"{what} {where(url)}: HTTP {exc.code} {one_line(exc.reason, 60)}"
                            + (f": {detail}" if detail else "")) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"{what} {where(url)}: {one_line(exc.reason, 160)}") from None
    except (socket.timeout, TimeoutError):
        raise DeliveryError(f"{what} {where(url)}: no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise DeliveryError(f"{what} {where(url)}: {one_line(exc, 160)}") from None
