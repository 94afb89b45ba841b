"""Alert email over SMTP (stdlib smtplib): STARTTLS with certificate verification (setting),
AUTH with a password from a private file or the environment, a plain-text body that says what
happened in words.

Alert text is hostile (labels come from job names, mount points, drain reasons): every header
value is made one line without control characters, so no label can add a header or a recipient;
the body's text has its control characters replaced too. A notification with ``owner_email``
(the job owner's early warning) also goes, in a message of its own that holds only that owner's
notifications, to that address when ``alerts.notify_job_owner`` is on.
"""

import base64
import os
import re
import smtplib
import socket
import ssl
import stat
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...analysis.words import human_duration
from ...errors import ConfigError
from ..notification import DeliveryError, Group, Notification
from .base import Channel, one_line, register, setting

PASSWORD_ENV = "NOMADE_ALERTS_SMTP_PASSWORD"  # noqa: S105 (the variable's name, not a password)
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def valid_address(text: str) -> bool:
    """A plain addr-spec (local@domain), nothing that could carry a second address or a header."""
    return bool(_ADDRESS.fullmatch(text)) and len(text) <= 254


def _body_text(text: object) -> str:
    """Multi-line text for the body: CRLF/CR become LF, other control characters a space."""
    return _BODY_CONTROL.sub(" ", str(text).replace("\r\n", "\n").replace("\r", "\n"))


def _when(ts: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    ago = now - ts
    return f"{stamp} ({human_duration(ago)} ago)" if ago >= 60 else f"{stamp} (just now)"


def _notification_lines(n: Notification, now: float) -> List[str]:
    lines = [f"{n.status.upper()} ({n.severity}): {one_line(n.summary, 1000)}"]
    if n.status == "resolved":
        end = n.ends_at if n.ends_at is not None else now
        lines.append(f"  from {_when(n.starts_at, now)} to {_when(end, now)}, "
                     f"{human_duration(max(end - n.starts_at, 0.0))}")
    else:
        lines.append(f"  since {_when(n.starts_at, now)}")
    if n.value is not None:
        lines.append(f"  value: {n.value:g}")
    if n.labels:
        lines.append("  labels: " + ", ".join(f"{one_line(k, 80)}={one_line(v, 300)}"
                                              for k, v in sorted(n.labels.items())))
    for line in _body_text(n.description).splitlines() if n.description else []:
        lines.append("  " + line)
    if n.alert_id is not None:
        lines.append(f"  alert {n.alert_id}: `nomade alerts ack {n.alert_id}` stops its repeats")
    return lines


def subject(group: Group, notifications: Tuple[Notification, ...]) -> str:
    firing = [n for n in notifications if n.status != "resolved"]
    state = "FIRING" if firing else "RESOLVED"
    where_ = f" on {group.cluster}" if group.cluster else ""
    text = f"[nomade {group.severity}] {state}: {group.rule}{where_}"
    if len(notifications) == 1:
        text += f": {notifications[0].summary}"
    else:
        text += f" ({len(notifications)} alerts)"
    return one_line(text, 200)


def body(group: Group, notifications: Tuple[Notification, ...], now: float) -> str:
    where_ = f" on cluster {group.cluster}" if group.cluster else ""
    lines = [f"nomade alert {group.rule}{where_}: {len(notifications)} "
             f"alert{'s' if len(notifications) != 1 else ''}, highest severity {group.severity}.", ""]
    for n in notifications:
        lines += _notification_lines(n, now) + [""]
    lines.append(f"Sent by nomade from {one_line(socket.gethostname(), 100)} at {_when(now, now)}.")
    return one_line(lines[0]) + "\n" + "\n".join(lines[1:]) + "\n"


def build_message(group: Group, notifications: Tuple[Notification, ...], sender: str,
                  recipients: List[str], now: float) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject(group, notifications)
    msg["Date"] = formatdate(now, localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid("nomade", domain=_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Nomade-Alert-Group"] = one_line(group.key, 200)
    msg.set_content(body(group, notifications, now), charset="utf-8", cte="quoted-printable")
    return msg


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def read_password(path: str) -> str:
    """The first line of ``path``; refused when others may read it."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        if st.st_mode & stat.S_IROTH:
            raise ConfigError(f"alerts.smtp_password_file: {p} is readable by every user; refusing it "
                              f"(chmod o-r {p})")
        text = p.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"alerts.smtp_password_file: cannot read {p}: "
                          f"{one_line(getattr(exc, 'strerror', None) or exc, 100)}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"alerts.smtp_password_file: {p} is empty")
    return lines[0]


@register
class EmailChannel(Channel):
    name = "email"

    def __init__(self, cfg: Any, environ: Optional[Dict[str, str]] = None):
        super().__init__(cfg)
        env = os.environ if environ is None else environ
        self.to = [str(a).strip() for a in cfg.get("alerts.email_to")]
        bad = [a for a in self.to if not valid_address(a)]
        if bad:
            raise ConfigError(f"alerts.email_to: {one_line(bad[0], 80)!r} is not an address (user@domain)")
        self.notify_owner = bool(setting(cfg, "alerts.notify_job_owner", False))
        if not self.to and not self.notify_owner:
            raise ConfigError("alerts.email_to is empty: no address to send alert email to")
        self.sender = cfg.get("alerts.email_from") or f"nomade@{_hostname()}"
        if not valid_address(self.sender):
            raise ConfigError(f"alerts.email_from: {one_line(self.sender, 80)!r} is not an address (user@domain)")
        self.host = cfg.get("alerts.smtp_host")
        self.port = int(cfg.get("alerts.smtp_port"))
        if not self.host or not 0 < self.port < 65536:
            raise ConfigError(f"alerts.smtp_host/smtp_port: {one_line(self.host, 80)}:{self.port} is not a server")
        self.starttls = bool(cfg.get("alerts.smtp_starttls"))
        self.user = cfg.get("alerts.smtp_user")
        self.password: Optional[str] = None
        if self.user:
            pw_file = cfg.get("alerts.smtp_password_file")
            self.password = read_password(pw_file) if pw_file else env.get(PASSWORD_ENV)
            if not self.password:
                raise ConfigError(f"alerts.smtp_user is set but there is no password: set "
                                  f"alerts.smtp_password_file or {PASSWORD_ENV}")

    def messages(self, group: Group, now: float) -> List[Tuple[EmailMessage, List[str]]]:
        """(message, envelope recipients): one to alerts.email_to with every notification, one
        per job owner with only theirs (when alerts.notify_job_owner is on)."""
        out = []
        if self.to:
            out.append((build_message(group, group.notifications, self.sender, self.to, now), self.to))
        if self.notify_owner:
            owners: Dict[str, List[Notification]] = {}
            for n in group.notifications:
                if n.owner_email:
                    owners.setdefault(n.owner_email.strip(), []).append(n)
            for address, items in owners.items():
                if not valid_address(address):
                    raise DeliveryError(f"email: job owner address {one_line(address, 80)!r} is not an "
                                        f"address; not sent to it")
                out.append((build_message(group, tuple(items), self.sender, [address], now), [address]))
        return out

    def send(self, group: Group, timeout_s: float) -> None:
        messages = self.messages(group, time.time())
        if messages:
            self._deliver(messages, timeout_s)

    def _login(self, smtp: smtplib.SMTP, where_: str) -> None:
        """smtplib's login, or, for a user or password beyond ASCII (which smtplib cannot send),
        AUTH PLAIN with UTF-8 (RFC 4616)."""
        user, password = self.user, self.password or ""
        if _is_ascii(user) and _is_ascii(password):
            smtp.login(user, password)
            return
        if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
            raise DeliveryError(f"{where_}: the password is not plain ASCII and the server does not "
                                f"offer AUTH PLAIN")
        token = base64.b64encode(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))
        code, resp = smtp.docmd("AUTH", "PLAIN " + token.decode("ascii"))
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)

    def _deliver(self, messages: List[Tuple[EmailMessage, List[str]]], timeout_s: float) -> None:
        where_ = f"email {one_line(self.host, 80)}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(f"{where_}: the server does not offer STARTTLS "
                                            f"(alerts.smtp_starttls = false for a plain local relay)")
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    self._login(smtp, where_)
                for msg, rcpts in messages:
                    smtp.send_message(msg, from_addr=self.sender, to_addrs=rcpts)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where_}: authentication failed for {one_line(self.user, 80)}: "
                                f"{exc.smtp_code} {_smtp_text(exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where_}: {exc.smtp_code} {_smtp_text(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where_}: recipients refused: "
                                f"{one_line(', '.join(exc.recipients), 200)}") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"{where_}: {one_line(exc, 200)}") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{where_}: TLS failed: {one_line(exc.reason or exc, 200)}") from None
        except (socket.timeout, TimeoutError):
            raise DeliveryError(f"{where_}: no answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise DeliveryError(f"{where_}: {one_line(exc.strerror or exc, 200)}") from None


def _is_ascii(text: str) -> bool:
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


def _smtp_text(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return one_line(text, 200)


def _hostname() -> str:
    name = re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname()) or "localhost"
    return name.strip(".-") or "localhost"
