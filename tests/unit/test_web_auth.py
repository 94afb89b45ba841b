"""Dashboard identity: token verifiers (owner, mode, links, sticky directory), sessions, the
trusted-proxy rule, hostile tokens and header values."""

import os
import time

import pytest

from nomade.errors import ConfigError
from nomade.web import auth


@pytest.fixture
def tokdir(tmp_path):
    d = tmp_path / "web-tokens"
    d.mkdir(mode=0o700)
    return d


def test_token_round_trip_and_files(tokdir, tmp_path):
    tok = auth.make_token(tokdir, os.getuid(), tmp_path / "cfg" / "dashboard-token")
    assert auth.verify_token(tokdir, tok) == os.getuid()
    assert (tmp_path / "cfg" / "dashboard-token").stat().st_mode & 0o777 == 0o600
    verifier = tokdir / str(os.getuid())
    assert verifier.stat().st_mode & 0o777 == 0o644
    assert tok.split("_")[2] not in verifier.read_text()          # only the digest is stored
    assert auth.verify_token(tokdir, tok[:-1] + ("0" if tok[-1] != "0" else "1")) is None


@pytest.mark.parametrize("bad", ["", "nmd_", "nmd_1_", "nmd_-1_" + "a" * 64, "nmd_1_" + "A" * 64,
                                 "nmd_1_" + "a" * 63, "nmd_1_" + "a" * 65, "nmd_99999999999_" + "a" * 64,
                                 "nmd_1_" + "a" * 64 + "\n\x00", "../../etc/passwd", "nmd_1_" + "g" * 64,
                                 "nmd_0_" + "a" * 64 + ";rm -rf /", "\x1b[31mnmd", None, 12])
def test_malformed_tokens_are_refused(tokdir, bad):
    assert auth.verify_token(tokdir, bad) is None


def test_verifier_must_be_owned_private_and_no_link(tokdir, tmp_path):
    tok = auth.make_token(tokdir, os.getuid(), tmp_path / "t")
    v = tokdir / str(os.getuid())
    os.chmod(v, 0o664)
    assert auth.verify_token(tokdir, tok) is None                  # group-writable
    os.chmod(v, 0o644)
    assert auth.verify_token(tokdir, tok) == os.getuid()
    if os.getuid() == 0:
        os.chown(v, 4242, -1)
        assert auth.verify_token(tokdir, tok) is None              # owned by someone else
        os.chown(v, 0, -1)
    real = tmp_path / "elsewhere"
    real.write_text(v.read_text())
    v.unlink()
    v.symlink_to(real)
    assert auth.verify_token(tokdir, tok) is None                  # a link is not followed


def test_world_writable_directory_must_be_sticky(tokdir, tmp_path):
    tok = auth.make_token(tokdir, os.getuid(), tmp_path / "t")
    os.chmod(tokdir, 0o733)
    assert auth.verify_token(tokdir, tok) is None
    os.chmod(tokdir, 0o1733)
    assert auth.verify_token(tokdir, tok) == os.getuid()


def test_verifier_content_is_checked(tokdir, tmp_path):
    tok = auth.make_token(tokdir, os.getuid(), tmp_path / "t")
    v = tokdir / str(os.getuid())
    v.write_text("x" * 10000)
    assert auth.verify_token(tokdir, tok) is None
    v.write_text(auth.VERIFIER_PREFIX + "zz\n")
    assert auth.verify_token(tokdir, tok) is None


def test_sessions_expire_and_follow_the_verifier(tokdir, tmp_path):
    keys = auth.SessionKeys()
    auth.make_token(tokdir, os.getuid(), tmp_path / "t")
    verifier = auth.read_verifier(tokdir, os.getuid())
    cookie = keys.session(os.getuid(), verifier)
    assert keys.check_session(cookie, tokdir) == os.getuid()
    assert keys.check_session(cookie, tokdir, now=time.time() + auth.SESSION_S + 10) is None
    assert auth.SessionKeys().check_session(cookie, tokdir) is None          # another server's key
    auth.make_token(tokdir, os.getuid(), tmp_path / "t")                      # a new token
    assert keys.check_session(cookie, tokdir) is None
    for bad in ["", "1.2", "a.b.c", cookie + "0", "0." + "9" * 12 + "." + "0" * 64]:
        assert keys.check_session(bad, tokdir) is None
    assert keys.csrf("a") != keys.csrf("b") and len(keys.csrf("a")) == 40


def test_trusted_proxies():
    nets = auth.parse_networks(["10.0.0.1", "192.168.0.0/24", "::1"])
    assert auth.from_trusted_proxy("10.0.0.1", nets)
    assert auth.from_trusted_proxy("192.168.0.77", nets)
    assert auth.from_trusted_proxy("::1", nets)
    for host in ("10.0.0.2", "", None, "testclient", "10.0.0.1\n", "192.168.1.1"):
        assert not auth.from_trusted_proxy(host, nets)
    assert not auth.from_trusted_proxy("10.0.0.1", [])
    with pytest.raises(ConfigError, match="trusted_proxies"):
        auth.parse_networks(["10.0.0.0/40"])
    with pytest.raises(ConfigError):
        auth.parse_networks(["*"])


@pytest.mark.parametrize("value", ["", "root\nx", "ro ot", "a" * 65, "-rf", "root;id", "röot", "$(id)"])
def test_proxy_header_values_that_are_no_user_name(value):
    assert auth.proxy_uid({"x-remote-user": value}, "X-Remote-User") is None


def test_proxy_header_known_user():
    assert auth.proxy_uid({"x-remote-user": "root"}, "X-Remote-User") == 0
    assert auth.proxy_uid({}, "X-Remote-User") is None
    assert auth.proxy_uid({"x-remote-user": "root"}, "") is None


def test_login_url_hides_wildcard_hosts():
    assert auth.login_url("0.0.0.0", 8470, "nmd_1_x").startswith("http://127.0.0.1:8470/login?token=")
