"""Bundle format: atomic write, validation errors (newer format, schema mismatch, missing or
truncated file), the per-version loader table. No training needed."""

import json

import numpy as np
import pytest

from nomade.errors import ModelError
from nomade.scoring.bundle import LOADERS, load_bundle
from nomade.scoring.lite_features import lite_names, schema_hash
from nomade.train.bundle_writer import write_bundle


def _manifest():
    names = lite_names(False)
    return {"feature_schema": {"lite": {"names": names, "hash": schema_hash(names)}},
            "thresholds": {"alert": 0.3, "high": 0.6},
            "ensemble": {"mode": "single", "primary": {"submit": "m"}},
            "models": {"m": {"file": "m.onnx", "kind": "gbdt", "inputs": "lite"}}}


def _write(tmp_path, version="v1", format_version=1, manifest=None):
    files = {"m.onnx": b"not really onnx", "history_lite.json": {"users": {}},
             "bank.npy": np.arange(6, dtype=np.float32).reshape(2, 3), "submit_model.lua": "return {}"}
    return write_bundle(tmp_path, version, files, manifest or _manifest(), format_version=format_version)


def _stack_manifest(bases=("m",), arrays=("bank.npy",)):
    man = _manifest()
    man["models"]["m"]["arrays"] = list(arrays)
    man["ensemble"] = {"mode": "stacked", "primary": {"submit": "ensemble_submit"},
                       "stacks": {"ensemble_submit": {
                           "stage": "submit", "bases": list(bases), "coef": [1.0], "intercept": 0.0,
                           "mu": [0.0], "sd": [1.0], "calibration": {"kind": "identity"}}}}
    return man


def test_write_and_load(tmp_path):
    p = _write(tmp_path)
    b = load_bundle(p)
    assert b.version == "v1" and b.manifest["format_version"] == 1
    assert set(b.manifest["files"]) == {"m.onnx", "history_lite.json", "bank.npy", "submit_model.lua"}
    assert b.array("bank.npy").shape == (2, 3)
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".tmp")]


def test_existing_version_refused(tmp_path):
    _write(tmp_path)
    with pytest.raises(ModelError, match="already exists"):
        _write(tmp_path)


def test_newer_format_refused(tmp_path):
    p = _write(tmp_path)
    m = json.loads((p / "manifest.json").read_text())
    m["format_version"] = 3
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match=r"bundle format 3 is newer than this nomade \(supports 2\); upgrade nomade"):
        load_bundle(p)


def test_schema_mismatch_refused(tmp_path):
    p = _write(tmp_path)
    m = json.loads((p / "manifest.json").read_text())
    m["feature_schema"]["lite"]["hash"] = "0" * 16
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="feature schema 'lite'"):
        load_bundle(p)


def test_missing_file_named(tmp_path):
    p = _write(tmp_path)
    (p / "submit_model.lua").unlink()
    with pytest.raises(ModelError, match="submit_model.lua is missing"):
        load_bundle(p)


def test_truncated_file_named(tmp_path):
    p = _write(tmp_path)
    data = (p / "history_lite.json").read_bytes()
    (p / "history_lite.json").write_bytes(data[:5])
    with pytest.raises(ModelError, match="history_lite.json has 5 bytes"):
        load_bundle(p)


def test_altered_file_detected(tmp_path):
    p = _write(tmp_path)
    (p / "m.onnx").write_bytes(b"NOT really onnx")
    with pytest.raises(ModelError, match="m.onnx does not match its sha256"):
        load_bundle(p)


def test_truncated_manifest(tmp_path):
    p = _write(tmp_path)
    (p / "manifest.json").write_text('{"format_version": 1, "mod')
    with pytest.raises(ModelError, match="manifest.json is not valid JSON"):
        load_bundle(p)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelError, match="is not a model bundle"):
        load_bundle(tmp_path)


def test_format_2_stacked_bundle_loads(tmp_path):
    b = load_bundle(_write(tmp_path, "v2", 2, _stack_manifest()))
    assert b.manifest["format_version"] == 2
    assert b.manifest["ensemble"]["stacks"]["ensemble_submit"]["bases"] == ["m"]


def test_format_2_stack_with_a_missing_base_refused(tmp_path):
    with pytest.raises(ModelError, match=r"stack ensemble_submit names base models \['gone'\]"):
        load_bundle(_write(tmp_path, "v2", 2, _stack_manifest(bases=("m", "gone"))))


def test_format_2_model_with_an_unlisted_array_refused(tmp_path):
    with pytest.raises(ModelError, match="model m names array 'knn_x.npy'"):
        load_bundle(_write(tmp_path, "v2", 2, _stack_manifest(arrays=("knn_x.npy",))))


def test_every_loader_version_is_tested():
    # format 1 by the tests above and the shipped models/default (tests/unit/test_scoring_imports.py)
    assert sorted(LOADERS) == [1, 2]


def test_no_pickles(tmp_path):
    with pytest.raises(ModelError, match="arrays are stored as .npy"):
        write_bundle(tmp_path, "v2", {"x.pkl": np.zeros(2)}, _manifest())


# ---------------------------------------------------------------- file names stay inside the bundle
def _list_file(p, name, data):
    import hashlib
    m = json.loads((p / "manifest.json").read_text())
    m["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (p / "manifest.json").write_text(json.dumps(m))


def test_manifest_file_with_dotdot_refused(tmp_path):
    p = _write(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"other user's data")
    _list_file(p, "../secret.txt", secret.read_bytes())
    with pytest.raises(ModelError, match=r"file '\.\./secret\.txt' points outside the bundle"):
        load_bundle(p)


def test_manifest_file_with_absolute_path_refused(tmp_path):
    p = _write(tmp_path)
    outside = tmp_path / "abs.bin"
    outside.write_bytes(b"x")
    _list_file(p, str(outside), b"x")
    with pytest.raises(ModelError, match="abs.bin' points outside the bundle"):
        load_bundle(p)


def test_manifest_file_symlinked_out_of_the_bundle_refused(tmp_path):
    import os
    p = _write(tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"y")
    os.symlink(outside, p / "link.bin")
    _list_file(p, "link.bin", b"y")
    with pytest.raises(ModelError, match="'link.bin' points outside the bundle"):
        load_bundle(p)


def test_symlink_inside_the_bundle_and_a_symlinked_bundle_load(tmp_path):
    import os
    p = _write(tmp_path)
    os.symlink("bank.npy", p / "alias.npy")
    _list_file(p, "alias.npy", (p / "bank.npy").read_bytes())
    os.symlink(p, tmp_path / "current")
    b = load_bundle(tmp_path / "current")
    assert b.array("alias.npy").shape == (2, 3)


def test_reading_a_name_outside_the_bundle_refused(tmp_path):
    p = _write(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    b = load_bundle(p)
    for bad in ("../x.json", str(tmp_path / "x.json")):
        with pytest.raises(ModelError, match="points outside the bundle"):
            b.json(bad)
        with pytest.raises(ModelError, match="points outside the bundle"):
            b.array(bad)
