"""``nomade dashboard token`` and the serving entry points (the server itself replaced)."""

import json
import os

import pytest

from nomade.cli.main import cli, run_cli
from nomade.web import auth


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("NOMADE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_dashboard_token_json(env, capsys):
    assert run_cli(cli, ["dashboard", "token", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    token_file = env / "xdg" / "nomade" / "dashboard-token"
    assert out["token_file"] == str(token_file)
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert auth.verify_token(env / "data" / "web-tokens", token) == os.getuid()
    assert out["login_url"].startswith("http://127.0.0.1:8470/login?token=nmd_")
    # a second token replaces the first
    assert run_cli(cli, ["dashboard", "token"]) == 0
    assert auth.verify_token(env / "data" / "web-tokens", token) is None


def test_dashboard_serves_with_the_settings(env, monkeypatch, capsys):
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    seen = {}
    monkeypatch.setattr("nomade.web.app.run_server", lambda cfg, host, port, store_path=None:
                        seen.update(host=host, port=port))
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    assert run_cli(cli, ["dashboard", "--port", "8555"]) == 0
    assert seen == {"host": "127.0.0.1", "port": 8555}
    out = capsys.readouterr().out
    assert "log in: http://127.0.0.1:8555/login?token=nmd_4242_" in out


def test_demo_serve_prints_the_login_link_and_starts_collectors(env, monkeypatch, capsys):
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    from nomade.web import serve
    served, collected = {}, []
    monkeypatch.setattr("nomade.web.app.run_server", lambda cfg, host, port, store_path=None:
                        served.update(store=str(cfg.store_path), port=port))
    monkeypatch.setattr(serve, "run_collectors", lambda cfg, stop, interval_s=30.0: collected.append(cfg.data_dir))
    lines = []
    serve.serve_demo(None, {}, env / "demo", None, 8556, lines.append)
    assert served == {"store": str(env / "demo" / "nomade.db"), "port": 8556}
    assert any(line.startswith("log in:    http://127.0.0.1:8556/login?token=nmd_") for line in lines)
    token = (env / "demo" / "dashboard-token").read_text().strip()
    assert auth.verify_token(env / "demo" / "web-tokens", token) == os.getuid()
    assert not (env / "xdg" / "nomade" / "dashboard-token").exists()     # the user's own token untouched
