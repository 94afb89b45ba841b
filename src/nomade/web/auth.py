"""Who is looking at the dashboard (docs/dashboard.md, "Identity").

Two ways, nothing else:

- **A trusted reverse proxy** (Open OnDemand, the site's Apache or nginx with its own login) puts
  the user name in ``web.proxy_user_header``; the header is believed only on connections from
  ``web.trusted_proxies`` (addresses or networks) and ignored from anywhere else.
- **A per-user token** made by ``nomade dashboard token``. The token (``nmd_<uid>_<64 hex>``)
  stays in the user's own file (~/.config/nomade/dashboard-token, mode 0600); the dashboard
  sees only a *verifier*: ``<token_dir>/<uid>``, holding the token's SHA-256, a file that the
  user owns and nobody else can write. The server believes a token for uid U only when that
  file is a regular file owned by U, not writable by group or others, and holds the token's
  digest. In a sticky directory (mode 1733, like /tmp) no user can create, replace or remove
  another user's file, so a token can only speak for the user who made it; the server reads
  nothing in users' homes. Logging in with the token sets a session cookie signed with a
  per-process key and bound to the verifier: making a new token (or deleting the file) ends
  every session of the old one.

Admins are root and members of ``privacy.admin_group`` (``whyservice.access.is_admin``, the one
rule). Every state-changing request carries a CSRF token derived from the session.
"""

import hashlib
import hmac
import ipaddress
import os
import pwd
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

from ..errors import ConfigError, NomadeError
from ..whyservice.access import Caller, is_admin

TOKEN_RE = re.compile(r"^nmd_([0-9]{1,10})_([0-9a-f]{64})$")
VERIFIER_PREFIX = "nomade-dashboard-token v1 sha256:"
VERIFIER_MAX = 256
SESSION_S = 12 * 3600
COOKIE = "nomade_session"
TOKEN_FILE = "dashboard-token"  # noqa: S105 (a file name)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: uid, user name, admin or not, and how we know (token, proxy)."""
    uid: int
    name: Optional[str]
    admin: bool
    via: str
    csrf: str = ""

    def caller(self) -> Caller:
        """The access rule's Caller (group membership comes from the user database for uid)."""
        try:
            gid = pwd.getpwuid(self.uid).pw_gid
        except KeyError:
            gid = -1
        return Caller(uid=self.uid, gid=gid)


def viewer_for_uid(uid: int, admin_group: str, via: str) -> Viewer:
    caller = Caller(uid=uid, gid=-1)
    return Viewer(uid=uid, name=caller.name, admin=is_admin(caller, admin_group), via=via)


# ------------------------------------------------------------------ tokens and verifiers
def token_dir(cfg) -> Path:
    """Where the verifiers live: ``web.token_dir``, else <data_dir>/web-tokens."""
    given = cfg.get("web.token_dir")
    return Path(given).expanduser() if given else Path(cfg.data_dir) / "web-tokens"


def _digest(secret_hex: str) -> str:
    return hashlib.sha256(secret_hex.encode("ascii")).hexdigest()


def parse_token(token: str) -> Optional[tuple]:
    """(uid, secret hex) of a well-formed token, else None (any text is safe to pass)."""
    m = TOKEN_RE.match(token.strip()) if isinstance(token, str) else None
    return (int(m.group(1)), m.group(2)) if m else None


def read_verifier(directory: Path, uid: int) -> Optional[str]:
    """The digest in ``directory``/<uid> when that file may speak for uid: a regular file (no
    link followed), owned by uid, not writable by group or others, small; and the directory is
    not writable by others unless sticky. None otherwise."""
    try:
        dst = os.stat(directory)
    except OSError:
        return None
    if dst.st_mode & stat.S_IWOTH and not dst.st_mode & stat.S_ISVTX:
        return None          # anyone could put a file there under any name
    try:
        fd = os.open(directory / str(uid), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022
                or st.st_size > VERIFIER_MAX):
            return None
        text = os.read(fd, VERIFIER_MAX).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if not text.startswith(VERIFIER_PREFIX):
        return None
    digest = text[len(VERIFIER_PREFIX):]
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def verify_token(directory: Path, token: str) -> Optional[int]:
    """The uid a token speaks for, None when it is malformed or its verifier does not match."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    uid, secret_hex = parsed
    digest = read_verifier(directory, uid)
    if digest is None or not hmac.compare_digest(digest, _digest(secret_hex)):
        return None
    return uid


def make_token(directory: Path, uid: int, token_file: Path) -> str:
    """A new token for the calling user ``uid``: its verifier into ``directory`` (mode 0644,
    replacing the old one) and the token itself into ``token_file`` (mode 0600). Returns it."""
    from ..private_files import make_private_dirs, write_atomic
    if not directory.is_dir():
        make_private_dirs(directory)       # a personal data dir: the server runs as this user
    secret_hex = secrets.token_hex(32)
    token = f"nmd_{uid}_{secret_hex}"
    make_private_dirs(token_file.parent)
    write_atomic(token_file, (token + "\n").encode("ascii"), mode=0o600)
    try:
        write_atomic(directory / str(uid), (VERIFIER_PREFIX + _digest(secret_hex) + "\n").encode("ascii"),
                     mode=0o644)
    except PermissionError:
        raise NomadeError(f"cannot write your token verifier into {directory}",
                          hint="ask the administrators to create it with mode 1733 "
                               "(web.token_dir)") from None
    return token


def login_url(host: str, port: int, token: str) -> str:
    """The link that logs the token's user in (the token leaves the address bar at once)."""
    from urllib.parse import urlencode
    wildcard = host in ("0.0.0.0", "", "::")  # noqa: S104 (a listening address shown as one to visit)
    shown = ("[::1]" if host == "::" else "127.0.0.1") if wildcard else host
    return f"http://{shown}:{port}/login?" + urlencode({"token": token})


def user_token_file() -> Path:
    """~/.config/nomade/dashboard-token (XDG_CONFIG_HOME honoured)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nomade" / TOKEN_FILE


# ------------------------------------------------------------------ sessions and CSRF
class SessionKeys:
    """Signs session cookies and derives CSRF tokens with a key that lives as long as the server."""

    def __init__(self, key: Optional[bytes] = None):
        self.key = key or secrets.token_bytes(32)

    def _mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def session(self, uid: int, verifier: str, now: Optional[float] = None) -> str:
        exp = int((now or time.time()) + SESSION_S)
        return f"{uid}.{exp}.{self._mac(f'session:{uid}.{exp}.{verifier}')}"

    def check_session(self, cookie: str, directory: Path, now: Optional[float] = None) -> Optional[int]:
        """The uid of a valid, unexpired session whose verifier is still the one it was made with."""
        m = re.fullmatch(r"([0-9]{1,10})\.([0-9]{1,12})\.([0-9a-f]{64})", cookie or "")
        if not m:
            return None
        uid, exp = int(m.group(1)), int(m.group(2))
        if exp < (now or time.time()):
            return None
        verifier = read_verifier(directory, uid)
        if verifier is None:
            return None
        want = self._mac(f"session:{uid}.{exp}.{verifier}")
        return uid if hmac.compare_digest(want, m.group(3)) else None

    def csrf(self, identity: str) -> str:
        return self._mac(f"csrf:{identity}")[:40]


# ------------------------------------------------------------------ the reverse proxy
def parse_networks(values: Sequence[str]) -> List[Network]:
    """``web.trusted_proxies`` as networks (a bare address is a /32 or /128); ConfigError names
    the bad entry."""
    out: List[Network] = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"web.trusted_proxies: {v!r} is not an address or network",
                              hint="give addresses such as 127.0.0.1 or networks such as 10.0.0.0/24") from None
    return out


def from_trusted_proxy(client_host: Optional[str], networks: Sequence[Network]) -> bool:
    if not client_host or not networks:
        return False
    try:
        addr = ipaddress.ip_address(client_host)
    except ValueError:
        return False
    return any(addr in n for n in networks)


def proxy_uid(headers: Mapping[str, str], header: str) -> Optional[int]:
    """The uid of the user name the proxy sent (one header value, a plain user name), None when
    absent, malformed or unknown to the user database."""
    value = headers.get(header.lower()) if header else None
    if not value or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}", value):
        return None
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        return None
