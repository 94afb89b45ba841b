"""Alert delivery against real services started here: aiosmtpd (plain, AUTH, STARTTLS with a
self-signed certificate), a local HTTP server standing in for Slack and a webhook receiver, and
Debian's prometheus-alertmanager on free local ports (the forwarded alert read back through its
v2 API). A dead SMTP server is retried while the webhook still delivers at once.

The Alertmanager test skips, with the reason, only when the binary is missing and CI is not
"true"; under CI it fails instead."""

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from nomade.alerts.channels import enabled_channels
from nomade.alerts.channels.alertmanager import AlertmanagerChannel
from nomade.alerts.channels.email import EmailChannel
from nomade.alerts.channels.slack import SlackChannel
from nomade.alerts.channels.webhook import WebhookChannel
from nomade.alerts.dispatch import deliver
from nomade.alerts.notification import DeliveryError, Notification, group_notifications
from nomade.config import load_config

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
HOSTILE = "x\r\nBcc: victim@example.org\r\n\r\n<!channel> & <http://evil|x>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cfg:
    """A Config with some values replaced (or added, for settings another part declares)."""

    def __init__(self, tmp_path: Path, **values: Any):
        empty = tmp_path / "empty.toml"
        empty.write_text("", encoding="utf-8")
        self.base = load_config(str(empty), environ={})
        self.values = {k.replace("__", "."): v for k, v in values.items()}

    def get(self, name: str) -> Any:
        return self.values[name] if name in self.values else self.base.get(name)


def group(n: int = 1, **kw: Any):
    now = time.time()
    ns = []
    for i in range(n):
        base = dict(fingerprint=f"fp{i}", rule="disk_full", severity="critical", status="firing",
                    cluster="hpc", labels={"mount": f"/scratch{i}", "hostile": HOSTILE},
                    summary=f"/scratch{i} is 96 % full, full in about 3 hours", description="",
                    starts_at=now - 600, value=96.0, alert_id=10 + i)
        base.update(kw)
        ns.append(Notification(**base))
    return group_notifications(ns)[0]


# ------------------------------------------------------------------ the receivers

class Receiver:
    """A local HTTP server recording each POST (path, headers, JSON, arrival time); answers
    ``status[path]`` (default 200)."""

    def __init__(self) -> None:
        self.posts: List[Dict[str, Any]] = []
        self.status: Dict[str, int] = {}
        self.delay: Dict[str, float] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.posts.append({"path": self.path, "headers": dict(self.headers), "t": time.time(),
                                    "json": json.loads(raw.decode("utf-8"))})
                time.sleep(owner.delay.get(self.path, 0.0))
                code = owner.status.get(self.path, 200)
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"receiver says no\r\nsecond line")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: List[Dict[str, Any]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "msg": message_from_bytes(envelope.content, policy=policy.default),
                              "login": getattr(session, "login_data", None), "t": time.time(),
                              "tls": session.ssl is not None})
        return "250 OK"


def start_smtp(**kw: Any):
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port(), **kw)
    ctl.start()
    return box, ctl


def check_login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"nomade" and auth_data.password == b"pw d\xc3\xa9"
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def email_cfg(tmp_path, port, **kw):
    values = dict(alerts__email_enabled=True, alerts__email_to=["ops@example.org"],
                  alerts__email_from="nomade@hpc.example.org", alerts__smtp_host="127.0.0.1",
                  alerts__smtp_port=port, alerts__smtp_starttls=False)
    values.update(kw)
    return Cfg(tmp_path, **values)


# ------------------------------------------------------------------ email

def test_email_arrives_with_safe_headers(tmp_path):
    box, ctl = start_smtp()
    try:
        g = group(2, summary="/scratch is 96 % full\r\nBcc: victim@example.org")
        EmailChannel(email_cfg(tmp_path, ctl.port)).send(g, 5.0)
    finally:
        ctl.stop()
    (m,) = box.messages
    assert m["to"] == ["ops@example.org"] and m["from"] == "nomade@hpc.example.org"
    msg = m["msg"]
    assert msg["Subject"] == "[nomade critical] FIRING: disk_full on hpc (2 alerts)"
    assert msg["From"] == "nomade@hpc.example.org" and msg["To"] == "ops@example.org"
    assert msg.get_all("Bcc") is None and msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert "FIRING (critical): /scratch is 96 % full Bcc: victim@example.org" in body
    assert "(10 minutes ago)" in body and "mount=/scratch1" in body and "nomade alerts ack 11" in body
    assert "hostile=x Bcc: victim@example.org <!channel> & <http://evil|x>" in body


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_email_auth_and_a_wrong_password(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("pw dé\n", encoding="utf-8")
    os.chmod(pw, 0o600)
    box, ctl = start_smtp(authenticator=check_login, auth_required=True, auth_require_tls=False)
    try:
        EmailChannel(email_cfg(tmp_path, ctl.port, alerts__smtp_user="nomade",
                               alerts__smtp_password_file=str(pw))).send(group(), 5.0)
        bad = EmailChannel(email_cfg(tmp_path, ctl.port, alerts__smtp_user="nomade"),
                           environ={"NOMADE_ALERTS_SMTP_PASSWORD": "wrong"})
        with pytest.raises(DeliveryError, match="authentication failed for nomade: 535") as exc:
            bad.send(group(), 5.0)
        assert "\n" not in str(exc.value)
        unauth = EmailChannel(email_cfg(tmp_path, ctl.port))
        with pytest.raises(DeliveryError, match="530"):
            unauth.send(group(), 5.0)
    finally:
        ctl.stop()
    assert len(box.messages) == 1 and box.messages[0]["login"] == b"nomade"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def test_email_starttls_verifies_the_certificate(tmp_path, self_signed, monkeypatch):
    cert, key = self_signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    box, ctl = start_smtp(tls_context=ctx, require_starttls=True, authenticator=check_login,
                          auth_required=True)          # AUTH only after TLS (aiosmtpd's default)
    cfg = email_cfg(tmp_path, ctl.port, alerts__smtp_starttls=True, alerts__smtp_user="nomade")
    env = {"NOMADE_ALERTS_SMTP_PASSWORD": "pw dé"}
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))      # trust the test CA
        EmailChannel(cfg, environ=env).send(group(), 5.0)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
        with pytest.raises(DeliveryError, match="TLS failed: CERTIFICATE_VERIFY_FAILED"):
            EmailChannel(cfg, environ=env).send(group(), 5.0)
    finally:
        ctl.stop()
    assert len(box.messages) == 1 and box.messages[0]["tls"] and box.messages[0]["login"] == b"nomade"
    plain_box, plain = start_smtp()
    try:
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            EmailChannel(email_cfg(tmp_path, plain.port, alerts__smtp_starttls=True)).send(group(), 5.0)
    finally:
        plain.stop()
    assert plain_box.messages == []


def test_job_owner_email(tmp_path):
    box, ctl = start_smtp()
    try:
        g = group(2, owner_email="alice@example.org")
        EmailChannel(email_cfg(tmp_path, ctl.port, alerts__notify_job_owner=True)).send(g, 5.0)
    finally:
        ctl.stop()
    assert sorted(m["to"][0] for m in box.messages) == ["alice@example.org", "ops@example.org"]


# ------------------------------------------------------------------ Slack and webhook

def test_slack_and_webhook_payloads(tmp_path, receiver):
    cfg = Cfg(tmp_path, alerts__slack_enabled=True, alerts__slack_webhook=receiver.url + "/services/T/B/secret",
              alerts__webhook_urls=[receiver.url + "/hook1", receiver.url + "/hook2"],
              alerts__external_url="https://nomade.example.org/")
    chans = enabled_channels(cfg)
    assert [c.name for c in chans] == ["slack", "webhook"]
    out = deliver(chans, [group(2)], attempts=1, timeout_s=5.0)
    assert [(d.channel, d.ok) for d in out] == [("slack", True), ("webhook", True)]
    by_path = {p["path"]: p for p in receiver.posts}
    assert set(by_path) == {"/services/T/B/secret", "/hook1", "/hook2"}
    slack = by_path["/services/T/B/secret"]["json"]
    assert slack["text"] == "[CRITICAL] disk_full on hpc: 2 firing, 0 resolved"
    assert "&lt;!channel&gt; &amp; &lt;http://evil|x&gt;" in slack["blocks"][1]["text"]["text"]
    assert "<!channel>" not in json.dumps(slack)
    hook = by_path["/hook1"]
    assert hook["headers"]["Content-Type"].startswith("application/json")
    p = hook["json"]
    assert p["version"] == "4" and p["receiver"] == "nomade" and p["status"] == "firing"
    assert p["groupKey"] == "disk_full/hpc" and p["externalURL"] == "https://nomade.example.org/"
    assert p["commonLabels"] == {"alertname": "disk_full", "cluster": "hpc", "severity": "critical",
                                 "hostile": HOSTILE}
    a = p["alerts"][0]
    assert a["labels"]["mount"] == "/scratch0" and a["annotations"]["nomade_alert_id"] == "10"
    assert a["endsAt"] == "0001-01-01T00:00:00Z" and a["startsAt"].endswith("Z")
    assert by_path["/hook2"]["json"] == p


def test_webhook_error_is_one_line_without_the_secret_path(tmp_path, receiver):
    receiver.status["/hook/s3cret"] = 500
    chan = WebhookChannel(Cfg(tmp_path, alerts__webhook_urls=[receiver.url + "/hook/s3cret"]))
    (d,) = deliver([chan], [group()], attempts=2, backoff_s=(0.05,), timeout_s=5.0)
    assert not d.ok and d.attempts == 2 and len(receiver.posts) == 2
    assert d.error == f"webhook {receiver.url}: HTTP 500 Internal Server Error: receiver says no second line"
    slack = SlackChannel(Cfg(tmp_path, alerts__slack_webhook=f"http://127.0.0.1:{free_port()}/T/s3cret"))
    with pytest.raises(DeliveryError, match="slack http://127.0.0.1:[0-9]+: .*refused") as exc:
        slack.send(group(), 2.0)
    assert "s3cret" not in str(exc.value)


def test_a_receiver_that_does_not_answer_times_out(tmp_path, receiver):
    receiver.delay["/slow"] = 1.5
    chan = WebhookChannel(Cfg(tmp_path, alerts__webhook_urls=[receiver.url + "/slow"]))
    t0 = time.time()
    with pytest.raises(DeliveryError, match="no answer within 0.3 s|timed out"):
        chan.send(group(), 0.3)
    assert time.time() - t0 < 1.2


# ------------------------------------------------------------------ a dead channel

def test_dead_smtp_is_retried_while_the_webhook_delivers_at_once(tmp_path, receiver):
    dead_port = free_port()                        # nothing listens there
    email = EmailChannel(email_cfg(tmp_path, dead_port))
    hook = WebhookChannel(Cfg(tmp_path, alerts__webhook_urls=[receiver.url + "/hook"]))
    t0 = time.time()
    out = deliver([email, hook], [group()], attempts=3, backoff_s=(1.0, 1.0), timeout_s=5.0)
    elapsed = time.time() - t0
    assert [(d.channel, d.ok, d.attempts) for d in out] == [("email", False, 3), ("webhook", True, 1)]
    assert "refused" in out[0].error.lower() and str(dead_port) in out[0].error
    assert receiver.posts[0]["t"] - t0 < 1.9       # not behind the email's retries (the last at 2 s)
    assert elapsed >= 2.0


def test_a_server_that_drops_the_connection_is_tried_per_attempt(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: List[float] = []

    def drop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(time.time())
            conn.close()

    threading.Thread(target=drop, daemon=True).start()
    try:
        email = EmailChannel(email_cfg(tmp_path, listener.getsockname()[1]))
        (d,) = deliver([email], [group(), group(rule="other")], attempts=3, backoff_s=(0.1, 0.2), timeout_s=2.0)[:1]
    finally:
        listener.close()
    assert not d.ok and d.attempts == 3 and len(accepted) == 3
    assert "closed" in d.error.lower()


# ------------------------------------------------------------------ Alertmanager

@pytest.fixture
def alertmanager(tmp_path):
    if not os.access(ALERTMANAGER, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ALERTMANAGER} is missing (Debian package prometheus-alertmanager); CI must run this")
        pytest.skip(f"{ALERTMANAGER} is missing (apt-get install prometheus-alertmanager)")
    conf = tmp_path / "alertmanager.yml"
    conf.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n', encoding="utf-8")
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "wb")
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={conf}", f"--storage.path={tmp_path / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.close()
            pytest.fail("alertmanager did not start: " + (tmp_path / "alertmanager.log").read_text()[-500:])
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()


def am_alerts(url: str) -> List[Dict[str, Any]]:
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as resp:
        return json.loads(resp.read().decode("utf-8"))


def test_forwarding_to_alertmanager(tmp_path, alertmanager):
    chan = AlertmanagerChannel(Cfg(tmp_path, alerts__alertmanager_url=alertmanager + "/",
                                   alerts__external_url="https://nomade.example.org"))
    firing = group(2)
    chan.send(firing, 5.0)
    got = sorted(am_alerts(alertmanager), key=lambda a: a["labels"]["mount"])
    assert [a["labels"]["mount"] for a in got] == ["/scratch0", "/scratch1"]
    a = got[0]
    assert a["labels"] == {"alertname": "disk_full", "cluster": "hpc", "severity": "critical",
                           "mount": "/scratch0", "hostile": HOSTILE}
    assert a["annotations"]["summary"] == "/scratch0 is 96 % full, full in about 3 hours"
    assert a["annotations"]["nomade_state"] == "firing" and a["status"]["state"] == "active"
    assert a["generatorURL"] == "https://nomade.example.org"
    resolved = group(1, status="resolved", ends_at=time.time())
    chan.send(resolved, 5.0)
    time.sleep(0.05)
    assert [x["labels"]["mount"] for x in am_alerts(alertmanager)] == ["/scratch1"]
