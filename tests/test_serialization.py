"""Tests for scratchnn.serialization: round trips, corrupt files, atomicity, no pickle."""

import json
import os
import struct

import numpy as np
import pytest

from scratchnn import serialization
from scratchnn.serialization import (
    atomic_write_bytes,
    load_json,
    load_tensors,
    save_json,
    save_tensors,
)


class _FakeTensor:
    """Stands in for a scratchnn Tensor: exposes ``.data`` and ``__array__``."""

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)


def _sample_tensors(rng):
    return {
        "w32": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal((2, 5)),
        "idx": rng.integers(-(2**40), 2**40, size=7, dtype=np.int64),
        "mask": rng.random(6) > 0.5,
        "scalar": np.array(3.25, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def _files(folder):
    return sorted(os.listdir(folder))


def test_tensors_round_trip_preserves_values_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    tensors = _sample_tensors(rng)
    path = tmp_path / "model.safetensors"
    save_tensors(path, tensors)
    loaded, metadata = load_tensors(path)
    assert metadata == {}
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        assert loaded[name].dtype == arr.dtype, name
        assert loaded[name].shape == arr.shape, name
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].flags.writeable, name
    loaded["w32"][0, 0] = 42.0  # writable means really writable


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    meta = {"config": json.dumps({"hidden": 64, "act": "gelu"}), "format": "scratchnn"}
    save_tensors(path, {"a": np.ones(2, np.float32)}, metadata=meta)
    _, loaded_meta = load_tensors(path)
    assert loaded_meta == meta
    assert json.loads(loaded_meta["config"])["hidden"] == 64


def test_non_contiguous_and_tensor_like_inputs_save_logical_values(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "t.safetensors"
    # A transpose and a strided slice are views whose memory order differs from their
    # logical order; a raw-buffer save without ascontiguousarray would scramble them.
    save_tensors(path, {"t": base.T, "s": base[:, ::2], "obj": _FakeTensor(base * 2)})
    loaded, _ = load_tensors(path)
    np.testing.assert_array_equal(loaded["t"], base.T)
    np.testing.assert_array_equal(loaded["s"], base[:, ::2])
    np.testing.assert_array_equal(loaded["obj"], base * 2)


def test_big_endian_input_loads_with_correct_values(tmp_path):
    arr = np.array([1.5, -2.0, 1e6], dtype=">f8")
    path = tmp_path / "be.safetensors"
    save_tensors(path, {"x": arr})
    loaded, _ = load_tensors(path)
    np.testing.assert_array_equal(loaded["x"], [1.5, -2.0, 1e6])


def test_file_is_plain_safetensors_without_pickle(tmp_path):
    path = tmp_path / "p.safetensors"
    save_tensors(path, {"a": np.arange(4, dtype=np.int64)}, metadata={"k": "v"})
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    assert header["a"] == {"dtype": "I64", "shape": [4], "data_offsets": [0, 32]}
    assert header["__metadata__"] == {"k": "v"}
    assert len(raw) == 8 + header_len + 32  # header + raw buffer, nothing else
    assert np.frombuffer(raw[8 + header_len:], dtype="<i8").tolist() == [0, 1, 2, 3]
    assert b"\x80" not in raw[:1]  # pickle streams start with the PROTO opcode 0x80


def test_truncated_tensor_file_raises_clear_error(tmp_path):
    path = tmp_path / "trunc.safetensors"
    save_tensors(path, {"w": np.ones((16, 16), np.float32)})
    raw = path.read_bytes()
    for cut in (len(raw) - 1, len(raw) // 2, 10, 3, 0):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="is truncated or not a safetensors file") as e:
            load_tensors(path)
        assert str(path) in str(e.value)


@pytest.mark.parametrize("content", [b"garbage, not tensors at all", b"\x80\x04\x95" + b"\0" * 40])
def test_garbage_tensor_file_raises_clear_error(tmp_path, content):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.safetensors is truncated or not a safetensors"):
        load_tensors(path)


def test_missing_files_raise_file_not_found_naming_path(tmp_path):
    for loader, name in ((load_tensors, "nope.safetensors"), (load_json, "nope.json")):
        with pytest.raises(FileNotFoundError, match=name):
            loader(tmp_path / name)


def test_unsupported_dtype_and_bad_metadata_are_rejected_without_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="complex128"):
        save_tensors(path, {"c": np.array([1 + 2j])})
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save_tensors(path, {"a": np.ones(1)}, metadata={"epoch": 3})
    with pytest.raises(TypeError, match="tensor names must be str"):
        save_tensors(path, {1: np.ones(1)})
    assert _files(tmp_path) == []


def test_json_round_trip_keeps_order_and_converts_numpy(tmp_path):
    path = tmp_path / "cfg.json"
    obj = {"z": 1, "a": [1.5, None, True], "n": np.float32(0.5), "arr": np.arange(3)}
    save_json(path, obj)
    text = path.read_text()
    assert text.index('"z"') < text.index('"a"')  # sort_keys=False
    assert text.startswith('{\n  "z": 1,')  # indent=2
    assert load_json(path) == {"z": 1, "a": [1.5, None, True], "n": 0.5, "arr": [0, 1, 2]}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float32("nan")])
def test_save_json_rejects_non_finite_and_keeps_old_file(tmp_path, bad):
    path = tmp_path / "metrics.json"
    save_json(path, {"loss": 1.0})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="metrics.json.*NaN and infinity are not allowed"):
        save_json(path, {"loss": bad})
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["metrics.json"]


def test_save_json_unserialisable_object_keeps_old_file(tmp_path):
    path = tmp_path / "state.json"
    save_json(path, {"ok": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="state.json.*object"):
        save_json(path, {"bad": object()})
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["state.json"]


def test_load_json_corrupt_file_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": 1,')
    with pytest.raises(ValueError, match=r"broken\.json is corrupt"):
        load_json(path)
    path.write_text('{"a": NaN}')
    with pytest.raises(ValueError, match=r"broken\.json is corrupt.*NaN"):
        load_json(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"broken\.json is corrupt"):
        load_json(path)


def test_atomic_write_failure_in_replace_keeps_old_file_and_cleans_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": np.zeros(3, np.float32)})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(serialization.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save_tensors(path, {"w": np.ones(3, np.float32)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["model.safetensors"]
    np.testing.assert_array_equal(load_tensors(path)[0]["w"], np.zeros(3))


def test_atomic_write_failure_during_write_cleans_temp(tmp_path, monkeypatch):
    path = tmp_path / "blob.bin"
    atomic_write_bytes(path, b"old")

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(serialization.os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"):
        atomic_write_bytes(path, b"new contents")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert _files(tmp_path) == ["blob.bin"]


def test_atomic_write_replaces_content_and_keeps_mode(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"first")
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert path.stat().st_mode & 0o777 == 0o640
    assert _files(tmp_path) == ["f.bin"]
    with pytest.raises(TypeError, match="data must be bytes"):
        atomic_write_bytes(path, "text")
