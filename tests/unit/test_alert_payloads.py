"""Alert delivery without the network: the payload builders (webhook, Alertmanager, Slack, email)
with hostile alert text, the URL and credential checks, and dispatch's retries and backoff.
The real SMTP server, HTTP receiver and Alertmanager are in tests/integration/test_alert_channels.py."""

import json
import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from nomade.alerts.channels import enabled_channels, registry
from nomade.alerts.channels.base import Channel, http_url, one_line
from nomade.alerts.channels.email import EmailChannel, build_message, read_password, valid_address
from nomade.alerts.channels.payload import ZERO_TIME, alertmanager_alerts, rfc3339, webhook_payload
from nomade.alerts.channels.slack import slack_payload
from nomade.alerts.dispatch import deliver
from nomade.alerts.notification import DeliveryError, Group, Notification, group_notifications
from nomade.config import load_config
from nomade.errors import ConfigError

T0 = 1_796_000_000.0        # 2026-11-30
HOSTILE = "x\r\nBcc: victim@example.org\r\n\r\n<!channel> & <http://evil|click> \x1b[31m\x00\u2028end"


def note(**kw) -> Notification:
    base = dict(fingerprint="fp1", rule="disk_full", severity="critical", status="firing",
                cluster="hpc", labels={"mount": "/scratch"}, summary="/scratch is 96 % full",
                description="", starts_at=T0, value=96.0, alert_id=7)
    base.update(kw)
    return Notification(**base)


def group(*ns: Notification) -> Group:
    return group_notifications(ns or (note(),))[0]


class Cfg:
    """A Config with some values replaced (or added, for settings another part declares)."""

    def __init__(self, tmp_path: Path, **values):
        empty = tmp_path / "empty.toml"
        empty.write_text("", encoding="utf-8")
        self.base = load_config(str(empty), environ={})
        self.values = {k.replace("__", "."): v for k, v in values.items()}

    def get(self, name):
        return self.values[name] if name in self.values else self.base.get(name)


# ------------------------------------------------------------------ webhook / Alertmanager payloads

def test_webhook_payload_has_the_alertmanager_field_set():
    ns = (note(), note(fingerprint="fp2", labels={"mount": "/home"}, status="resolved",
                       severity="warning", ends_at=T0 + 600, value=None))
    p = webhook_payload(group(*ns), external_url="https://nomade.example.org", now=T0 + 900)
    assert set(p) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                      "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert p["version"] == "4" and p["status"] == "firing" and p["groupKey"] == "disk_full/hpc"
    assert p["groupLabels"] == {"alertname": "disk_full", "cluster": "hpc"}
    assert p["commonLabels"] == {"alertname": "disk_full", "cluster": "hpc"}
    a, b = p["alerts"]
    assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert a["labels"] == {"alertname": "disk_full", "cluster": "hpc", "severity": "critical", "mount": "/scratch"}
    assert a["annotations"]["summary"] == "/scratch is 96 % full" and a["annotations"]["value"] == "96"
    assert a["startsAt"] == rfc3339(T0) and a["startsAt"].endswith("Z") and a["endsAt"] == ZERO_TIME
    assert b["status"] == "resolved" and b["endsAt"] == rfc3339(T0 + 600)
    assert a["fingerprint"] == "fp1"
    json.dumps(p, ensure_ascii=False).encode("utf-8")


def test_payload_labels_with_hostile_names_and_values():
    n = note(labels={"bad name\n": HOSTILE, "9lives": "x", "empty": "", "alertname": "spoof",
                     "bytes": "caf\udce9"}, summary=HOSTILE, description=HOSTILE)
    p = webhook_payload(group(n), now=T0)
    labels = p["alerts"][0]["labels"]
    assert labels["bad_name_"] == HOSTILE               # kept as data, JSON escapes it
    assert labels["_9lives"] == "x" and "empty" not in labels
    assert labels["alertname"] == "disk_full"            # ours wins over the label
    assert labels["bytes"] == "caf?"
    body = json.dumps(p, ensure_ascii=False).encode("utf-8")      # valid UTF-8, no crash
    assert b"\r\n" not in body and json.loads(body) == p
    am = alertmanager_alerts(group(n), now=T0, ttl_s=3600)
    assert set(am[0]) == {"labels", "annotations", "startsAt", "endsAt"}
    assert all(k.replace("_", "a").isalnum() and not k[0].isdigit() for k in am[0]["labels"])


def test_alertmanager_ends_at():
    ns = (note(), note(fingerprint="r", status="resolved", ends_at=T0 + 5), note(fingerprint="t", status="test"),
          note(fingerprint="future", starts_at=T0 + 99))
    am = alertmanager_alerts(group(*ns), now=T0 + 60, ttl_s=3600, external_url="http://n")
    assert [a["endsAt"] for a in am] == [rfc3339(T0 + 3660), rfc3339(T0 + 60), rfc3339(T0 + 360),
                                         rfc3339(T0 + 3660)]
    assert am[3]["startsAt"] == rfc3339(T0 + 60)          # never after now
    assert am[0]["generatorURL"] == "http://n"
    assert am[2]["annotations"]["nomade_state"] == "test"


# ------------------------------------------------------------------ Slack

def test_slack_escapes_and_limits():
    ns = tuple(note(fingerprint=str(i), summary=HOSTILE, description=HOSTILE, labels={"j": "<@U1>&"})
               for i in range(60))
    p = slack_payload(group(*ns))
    text = json.dumps(p)
    assert "<!channel>" not in text and "<http" not in text and "<@U1>" not in text
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in p["blocks"][1]["text"]["text"]
    assert len(p["blocks"]) <= 50 and "and 20 more" in p["blocks"][-1]["elements"][0]["text"]
    assert len(p["blocks"][0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in p["blocks"][1:-1])
    assert "\r" not in text and "\\u0000" not in p["blocks"][1]["text"]["text"].split("\n")[0]
    assert p["text"].startswith("[CRITICAL] disk_full on hpc: 60 firing, 0 resolved")


# ------------------------------------------------------------------ email

def test_email_headers_cannot_be_injected():
    n = note(rule="r\r\nBcc: a@b.c", cluster="c\nX-Evil: 1", summary=HOSTILE, labels={"m\r\nTo: x@y": HOSTILE},
             description="line one\r\nline two\x1b[2J")
    g = group(n)
    msg = build_message(g, g.notifications, "nomade@example.org", ["admin@example.org"], T0 + 720)
    raw = msg.as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_all("Bcc") is None and parsed.get_all("X-Evil") is None
    assert parsed["To"] == "admin@example.org" and len(parsed.get_all("To")) == 1
    subject = str(parsed["Subject"])
    assert subject.startswith("[nomade critical] FIRING: r Bcc: a@b.c on c X-Evil: 1:")
    assert "\n" not in subject and "\x1b" not in subject
    text = parsed.get_content()
    assert "\x1b" not in text and "\x00" not in text
    assert "  line one\n  line two" in text
    assert "since 2026-11-30" in text and "(12 minutes ago)" in text
    assert "labels: m To: x@y=x Bcc: victim@example.org" in text
    assert "nomade alerts ack 7" in text


def test_addresses_are_checked(tmp_path):
    assert valid_address("ops@example.org")
    for bad in ("a@b.c\r\nBcc: x@y", "a@b.c, x@y.z", "<a@b.c>", "ab.c", "a@b.c\n", "a b@c.d", ""):
        assert not valid_address(bad), bad
    with pytest.raises(ConfigError, match="alerts.email_to"):
        EmailChannel(Cfg(tmp_path, alerts__email_to=["ops@example.org\nBcc: x@y.z"]))
    with pytest.raises(ConfigError, match="alerts.email_to is empty"):
        EmailChannel(Cfg(tmp_path))


def test_owner_gets_only_their_notifications(tmp_path):
    ns = (note(owner_email="alice@example.org", labels={"job": "81234"}),
          note(fingerprint="b", owner_email="bob@example.org", labels={"job": "99"}),
          note(fingerprint="c"))
    g = group(*ns)
    off = EmailChannel(Cfg(tmp_path, alerts__email_to=["ops@example.org"]))
    assert [r for _, r in off.messages(g, T0)] == [["ops@example.org"]]
    on = EmailChannel(Cfg(tmp_path, alerts__email_to=["ops@example.org"], alerts__notify_job_owner=True))
    msgs = on.messages(g, T0)
    assert [r for _, r in msgs] == [["ops@example.org"], ["alice@example.org"], ["bob@example.org"]]
    alice = msgs[1][0].get_content()
    assert "job=81234" in alice and "99" not in alice
    hostile = group(note(owner_email="eve@example.org\r\nBcc: all@example.org"))
    with pytest.raises(DeliveryError, match="not an address"):
        on.messages(hostile, T0)


def test_password_from_private_file_or_environment(tmp_path):
    pw = tmp_path / "smtp.pw"
    pw.write_text("s3cret\nignored\n", encoding="utf-8")
    os.chmod(pw, 0o640)
    assert read_password(str(pw)) == "s3cret"
    cfg = Cfg(tmp_path, alerts__email_to=["o@e.org"], alerts__smtp_user="nomade", alerts__smtp_password_file=str(pw))
    assert EmailChannel(cfg).password == "s3cret"
    os.chmod(pw, 0o644)
    with pytest.raises(ConfigError, match="readable by every user") as exc:
        EmailChannel(cfg)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(str(tmp_path / "missing"))
    env_cfg = Cfg(tmp_path, alerts__email_to=["o@e.org"], alerts__smtp_user="nomade")
    assert EmailChannel(env_cfg, environ={"NOMADE_ALERTS_SMTP_PASSWORD": "fromenv"}).password == "fromenv"
    with pytest.raises(ConfigError, match="no password"):
        EmailChannel(env_cfg, environ={})


# ------------------------------------------------------------------ URLs and the registry

@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://h/x", "http://", "javascript:alert(1)",
                                 "http://h/a b", "http://h/\nx", "https://h:99999/", "/relative", ""])
def test_only_http_urls(url):
    with pytest.raises(ConfigError, match="alerts.webhook_urls") as exc:
        http_url(url, "alerts.webhook_urls")
    assert "\n" not in str(exc.value) and "passwd" not in str(exc.value)


def test_enabled_channels_and_bad_urls_at_load(tmp_path):
    assert set(registry()) == {"email", "slack", "webhook", "alertmanager"}
    assert enabled_channels(Cfg(tmp_path)) == []
    cfg = Cfg(tmp_path, alerts__webhook_urls=["http://127.0.0.1:9/x"], alerts__alertmanager_url="https://am:9093/",
              alerts__slack_enabled=True, alerts__slack_webhook="https://hooks.slack.com/services/T/B/X")
    assert [c.name for c in enabled_channels(cfg)] == ["alertmanager", "slack", "webhook"]
    assert enabled_channels(cfg)[0].url == "https://am:9093/api/v2/alerts"
    with pytest.raises(ConfigError, match="alerts.slack_webhook: expected an http"):
        enabled_channels(Cfg(tmp_path, alerts__slack_enabled=True, alerts__slack_webhook="file:///tmp/x"))
    with pytest.raises(ConfigError, match=r"alerts.webhook_urls\[1\]"):
        enabled_channels(Cfg(tmp_path, alerts__webhook_urls=["http://a/", "file:///etc/shadow"]))


def test_one_line():
    assert one_line("a\r\n\tb\x00\u2028c  ") == "a b c"
    assert one_line("x" * 50, 10) == "xxxxxxx..."


# ------------------------------------------------------------------ dispatch

class Flaky(Channel):
    def __init__(self, name, fail_times, error=DeliveryError):
        self.name, self.fail_times, self.error, self.sent = name, fail_times, error, []

    def send(self, group, timeout_s):
        self.sent.append((group.key, timeout_s))
        if len(self.sent) <= self.fail_times:
            raise self.error(f"{self.name}: down\nsecond line")


def test_dispatch_retries_with_backoff_and_reports():
    sleeps = []
    good, flaky, dead, broken = Flaky("good", 0), Flaky("flaky", 2), Flaky("dead", 99), Flaky("broken", 99, KeyError)
    g1, g2 = group(note()), group(note(rule="other"))
    out = deliver([good, flaky, dead, broken], [g1, g2], attempts=3, backoff_s=(0.5, 1.0), timeout_s=4.0,
                  sleep=sleeps.append)
    got = [(d.channel, d.group_key, d.ok, d.attempts) for d in out]
    assert got == [("good", "disk_full/hpc", True, 1), ("good", "other/hpc", True, 1),
                   ("flaky", "disk_full/hpc", True, 3), ("flaky", "other/hpc", True, 1),
                   ("dead", "disk_full/hpc", False, 3), ("dead", "other/hpc", False, 0),
                   ("broken", "disk_full/hpc", False, 3), ("broken", "other/hpc", False, 0)]
    assert sorted(sleeps) == sorted([0.5, 1.0] * 3)
    assert out[4].error == "dead: down second line"
    assert out[5].error.startswith("not tried, channel down: dead: down")
    assert out[6].error.startswith("broken: KeyError")
    assert len(dead.sent) == 3 and good.sent[0][1] == 4.0
