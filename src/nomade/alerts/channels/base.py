"""The channel contract: a class with a ``name`` that is built from the configuration and sends
one ``Group`` per call, raising ``DeliveryError`` (one line) when it cannot. Built-in channels
register with ``@register``; ``nomade.alerts.channels.registry()`` lists them.

Also the small pieces every channel shares: reading a setting that another part of nomade may not
declare, checking a URL setting, and making hostile text one safe line.
"""

import re
from typing import Any, ClassVar, Dict, Type
from urllib.parse import urlsplit

from ...errors import ConfigError
from ..notification import Group

_BUILTIN: Dict[str, Type["Channel"]] = {}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class Channel:
    name: ClassVar[str] = ""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def send(self, group: Group, timeout_s: float) -> None:
        """Deliver ``group``; raise DeliveryError with one line when it could not be."""
        raise NotImplementedError


def register(cls: Type[Channel]) -> Type[Channel]:
    """Class decorator: a built-in channel, known by its ``name``."""
    _BUILTIN[cls.name] = cls
    return cls


def builtin() -> Dict[str, Type[Channel]]:
    return dict(_BUILTIN)


def setting(cfg: Any, name: str, default: Any) -> Any:
    """``cfg.get(name)``, or ``default`` when this nomade does not declare ``name``."""
    try:
        return cfg.get(name)
    except KeyError:
        return default


def one_line(text: object, limit: int = 0) -> str:
    """``text`` with every run of control characters (CR, LF, TAB, ESC, NUL, the Unicode line
    separators) replaced by one space and trimmed; cut to ``limit`` characters (0 = no cut)."""
    out = _CONTROL.sub(" ", str(text)).strip()
    if limit and len(out) > limit:
        out = out[:max(limit - 3, 0)].rstrip() + "..."
    return out


def http_url(url: str, name: str) -> str:
    """``url`` when it is an http:// or https:// URL with a host, else a ConfigError naming the
    setting (and not the URL, which may hold a secret token)."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ConfigError(f"{name}: not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ConfigError(f"{name}: expected an http:// or https:// URL, got {one_line(got, 40)}")
    if not parts.hostname or _CONTROL.search(text) or " " in text:
        raise ConfigError(f"{name}: expected an http:// or https:// URL with a host and no spaces")
    return text


def optional_http_url(cfg: Any, name: str) -> str:
    """The URL setting ``name``: "" when empty, else checked like ``http_url``."""
    value = cfg.get(name)
    return http_url(value, name) if value else ""


def where(url: str) -> str:
    """The scheme and host of ``url``, for error lines (its path and query may be a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
