"""Registry: candidate -> promote (store status + CURRENT pointer + symlink) -> rollback."""

import os

import pytest

from nomade.errors import ModelError
from nomade.scoring.bundle import load_bundle
from nomade.scoring.registry import (current_in_store, current_version, list_models, promote, register,
                                     resolve_bundle_path, rollback)
from nomade.store.db import open_store
from test_bundle import _write


@pytest.fixture()
def env(tmp_path):
    store = open_store(tmp_path / "nomade.db")
    reg = tmp_path / "models"
    for v in ("v1", "v2", "v3"):
        p = _write(reg, v)
        register(store, p, load_bundle(p).manifest)
    yield store, reg
    store.close()


def test_promote_and_rollback(env):
    store, reg = env
    assert current_version(reg) is None
    promote(store, reg, "v1")
    promote(store, reg, "v2")
    assert current_version(reg) == "v2" and current_in_store(store) == "v2"
    assert os.readlink(reg / "current") == "v2"
    assert {r["version"]: r["status"] for r in list_models(store)} == \
        {"v1": "retired", "v2": "current", "v3": "candidate"}
    assert rollback(store, reg) == "v1"
    assert current_version(reg) == "v1" and current_in_store(store) == "v1"
    with pytest.raises(ModelError, match="nothing to roll back to"):
        rollback(store, reg)


def test_unknown_version(env):
    store, reg = env
    with pytest.raises(ModelError, match="no model version 'nope'"):
        promote(store, reg, "nope")


class _Cfg:
    def __init__(self, reg, bundle=""):
        self.registry_dir = reg
        self._b = bundle

    def get(self, name):
        return self._b


def test_resolve_prefers_setting_then_current_then_default(env, monkeypatch, tmp_path):
    store, reg = env
    monkeypatch.setenv("NOMADE_DEFAULT_BUNDLE", str(reg / "v3"))
    assert resolve_bundle_path(_Cfg(reg)) == reg / "v3"
    promote(store, reg, "v2")
    assert resolve_bundle_path(_Cfg(reg)) == reg / "v2"
    assert resolve_bundle_path(_Cfg(reg, str(reg / "v1"))) == reg / "v1"
    monkeypatch.setenv("NOMADE_DEFAULT_BUNDLE", str(tmp_path / "none"))
    with pytest.raises(ModelError, match="no model bundle"):
        resolve_bundle_path(_Cfg(tmp_path / "empty"))


def test_promote_publishes_private_lua_and_refuses_broken(env, tmp_path):
    store, reg = env
    lua_path = tmp_path / "etc" / "submit_model.lua"
    promote(store, reg, "v1", str(lua_path))
    assert lua_path.read_text() == "return {}" and lua_path.stat().st_mode & 0o777 == 0o600
    (reg / "v2" / "submit_model.lua").write_text('return "\\3001"')  # escape sequence too large
    with pytest.raises(ModelError, match="escape sequence too large"):
        promote(store, reg, "v2", str(lua_path))
    assert current_version(reg) == "v1" and lua_path.read_text() == "return {}"
