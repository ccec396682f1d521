"""Atomic, pickle-free file I/O for checkpoints: safetensors for arrays, JSON for the rest.

Every write goes to a temporary file in the destination's folder, is flushed and fsynced, then
renamed over the destination with ``os.replace``. A crash or an error mid-write therefore
leaves either the old file or the new one, never a partial file. Loading never runs code:
safetensors is a JSON header plus raw little-endian buffers, and JSON is data only.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

__all__ = [
    "atomic_write_bytes",
    "load_json",
    "load_tensors",
    "save_json",
    "save_tensors",
]

PathLike = str | os.PathLike


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: the file is either the old one or all of the new.

    The temporary file lives in the same folder so that ``os.replace`` is a same-filesystem
    rename (atomic on POSIX and Windows). If anything fails, the temporary file is removed and
    the destination is untouched. The parent folder must exist.
    """
    path = Path(path)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    folder = path.parent
    # mkstemp creates the file 0600; keep an existing file's mode, else use a normal 0644,
    # so an atomic rewrite does not silently change who can read a checkpoint.
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave temp files behind.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself; best effort because not every OS/filesystem allows
    # opening a directory (Windows does not).
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _read_bytes(path: PathLike, what: str) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{what} path is a directory, not a file: {path}") from None


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays show up in metrics and configs; convert them to plain Python
    # values (the encoder then still applies allow_nan=False to the converted floats).
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def save_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically; NaN/Infinity are rejected.

    NumPy scalars and arrays are converted to Python numbers and lists.

    Raises:
        TypeError: ``obj`` contains something JSON cannot represent (nothing is written).
        ValueError: ``obj`` contains NaN or infinity (nothing is written).
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    except ValueError as e:
        raise ValueError(f"cannot write JSON to {path}: {e} (NaN and infinity are not "
                         "allowed)") from e
    except TypeError as e:
        raise TypeError(f"cannot write JSON to {path}: {e}") from e
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def load_json(path: PathLike) -> Any:
    """Read a JSON file written by :func:`save_json`.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file is not valid UTF-8 JSON or contains NaN/Infinity ("corrupt").
    """
    raw = _read_bytes(path, "JSON file")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"JSON file {path} is corrupt: {e}") from None


def _to_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(getattr(value, "data", None), np.ndarray):
        arr = value.data  # a scratchnn Tensor: take its array without touching autograd
    elif hasattr(value, "__array__"):
        arr = np.asarray(value)
    else:
        raise TypeError(f"tensor {name!r} must be an ndarray or array-like with __array__, "
                        f"got {type(value).__name__}")
    if arr.dtype.byteorder == ">":
        # safetensors stores little-endian data; make the byte order explicit.
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    # safetensors writes the raw buffer: a non-contiguous view (e.g. a transpose) would be
    # saved in memory order and load back scrambled. (Not np.ascontiguousarray: it turns 0-d
    # arrays into shape (1,).)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def save_tensors(
    path: PathLike,
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write named arrays (and optional string metadata) to a safetensors file atomically.

    Args:
        path: destination file; its folder must exist.
        tensors: name -> ndarray, or any object with a ``.data`` ndarray or ``__array__``
            (scratchnn Tensors).
        metadata: string -> string pairs stored in the header (e.g. a JSON-encoded config).

    Raises:
        TypeError: a name, metadata key or metadata value is not a string.
        ValueError: an array has a dtype safetensors cannot store (nothing is written).
    """
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        arrays[name] = _to_array(name, value)
    meta = None
    if metadata is not None:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"metadata must map str to str, got {key!r}: {value!r} "
                                "(JSON-encode structured values)")
        meta = dict(metadata)
    try:
        data = safetensors.numpy.save(arrays, metadata=meta)
    except safetensors.SafetensorError as e:
        dtypes = {k: str(v.dtype) for k, v in arrays.items()}
        raise ValueError(f"cannot save tensors to {path}: {e}; dtypes: {dtypes}") from None
    atomic_write_bytes(path, data)


def load_tensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file; returns ``(tensors, metadata)`` with writable arrays.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file is truncated or not a safetensors file; no arrays are returned.
    """
    raw = _read_bytes(path, "tensor file")
    try:
        # Deserialise from one in-memory snapshot: the whole file is validated (header,
        # offsets covering the buffer) before any array is handed back.
        loaded = safetensors.numpy.load(raw)
        (header_len,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + header_len])
    except (safetensors.SafetensorError, ValueError, struct.error) as e:
        raise ValueError(f"tensor file {path} is truncated or not a safetensors file "
                         f"({e})") from None
    tensors = {
        name: arr if arr.flags.writeable else arr.copy() for name, arr in loaded.items()
    }
    metadata = header.get("__metadata__") or {}
    return tensors, dict(metadata)
