"""Checkpoints: ``save(state_dict, path)`` / ``load(path)`` as safetensors files, never pickle.

A safetensors file is an 8-byte little-endian header length, a JSON header
(each tensor's dtype, shape and byte range) and the raw bytes; loading runs
no code, unlike pickle-based formats. The files are the same ones torch
writes with ``safetensors.torch.save_file``, so a normlab ``state_dict`` loads
into the equivalent torch model and the reverse::

    torch_model.load_state_dict(safetensors.torch.load_file(path))       # normlab -> torch
    model.load_state_dict(normlab.load(path))                             # torch -> normlab

Saving is atomic: the bytes go to a temporary file in the same directory,
are flushed and fsync'ed, and only then renamed over ``path``, so a crash or
a full disk mid-write never leaves a half-written checkpoint behind (the old
file, if any, stays intact).

>>> import os, tempfile, normlab, normlab.nn as nn
>>> model = nn.Linear(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "linear.safetensors")
>>> normlab.save(model.state_dict(), path)
>>> list(normlab.load(path))
['weight', 'bias']
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping

import numpy as np
import safetensors.numpy

from normlab.autograd.tensor import Tensor

__all__ = ["save", "load"]

# The header metadata entry that remembers the state_dict's key order
# (safetensors itself lays tensors out sorted by alignment and name).
_ORDER_KEY = "normlab.key_order"

# safetensors dtype codes that NumPy can hold (bfloat16 and float8 it cannot).
_FILE_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_SAVABLE = {np.dtype(t) for t in _FILE_DTYPES.values()}

_CHUNK = 1 << 24  # write 16 MiB at a time


def _as_savable_array(key: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        array = value._data
    elif isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    else:
        raise TypeError(
            f"normlab.save: expected NumPy arrays or normlab Tensors as values, got {type(value).__name__} for key {key!r}"
        )
    if array.dtype not in _SAVABLE:
        raise TypeError(
            f"normlab.save: dtype {array.dtype} of key {key!r} cannot be stored "
            f"(supported: {', '.join(sorted(str(d) for d in _SAVABLE))})"
        )
    # safetensors reads the raw buffer: it must be C-contiguous (slices, transposes are copied).
    return array if array.flags.c_contiguous else np.array(array, order="C")


def _write_all(file, data: bytes) -> None:
    """Write every byte of ``data`` to ``file`` (a separate function so tests can simulate a failure)."""
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        file.write(view[start:start + _CHUNK])


def _open_temporary(directory: str, base: str) -> tuple[int, str]:
    """Create a new, uniquely named file next to the target; the umask sets its permissions as for any new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"normlab.save: could not create a temporary file in {directory}")


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); harmless to skip where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(state_dict, path, *, metadata: dict[str, str] | None = None) -> None:
    """Write ``state_dict`` (str -> NumPy array or Tensor) to ``path`` as a safetensors file, atomically.

    ``metadata`` (str -> str) is stored in the header. The key order is kept, so
    ``load`` returns the keys in the order they were given.

    >>> import os, tempfile, numpy as np, normlab
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> normlab.save({"w": np.eye(2, dtype=np.float32)}, path)
    >>> normlab.load(path)["w"]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"normlab.save: expected a dict of arrays, got {type(state_dict).__name__}")
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"normlab.save: keys must be strings, got {type(key).__name__} {key!r}")
        if key == "__metadata__":
            raise ValueError("normlab.save: the key '__metadata__' is reserved by the safetensors format")
        arrays[key] = _as_savable_array(key, value)
    header_metadata = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in metadata.items()):
            raise TypeError("normlab.save: metadata must map strings to strings")
        header_metadata.update(metadata)
    header_metadata[_ORDER_KEY] = json.dumps(list(arrays))
    data = safetensors.numpy.save(arrays, metadata=header_metadata)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"normlab.save: the directory of {path} does not exist")
    fd, temporary = _open_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as file:
            _write_all(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic on POSIX and Windows: readers see the old or the new file
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _refuse(path: str, why: str) -> ValueError:
    return ValueError(f"normlab.load: {path} is not a valid safetensors file: {why}")


def load(path) -> dict[str, np.ndarray]:
    """Read a safetensors file into a dict of NumPy arrays (in the order they were saved); no code runs.

    A file written by normlab comes back in its ``state_dict``'s key order; any
    other (e.g. torch's ``safetensors.torch.save_file``) in the order of its
    bytes. A truncated, corrupt or non-safetensors file raises ValueError naming
    the path; a dtype NumPy lacks (bfloat16) raises ValueError naming the key.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read()
    # Check the framing ourselves first, for messages that say what is wrong.
    if len(data) < 8:
        raise _refuse(path, f"{len(data)} bytes is too short to hold a header")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > len(data) - 8:
        raise _refuse(path, f"the header claims {header_length} bytes but the file has {len(data) - 8} after the "
                            f"length (truncated, or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + header_length])
    except (UnicodeDecodeError, ValueError) as error:
        raise _refuse(path, f"the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise _refuse(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    for key, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise _refuse(path, f"the header entry for {key!r} lacks dtype, shape or data_offsets")
        if entry["dtype"] not in _FILE_DTYPES:
            raise ValueError(
                f"normlab.load: {path}: tensor {key!r} has dtype {entry['dtype']}, which NumPy cannot represent "
                f"(convert it to float32 before saving)"
            )
    try:
        # safetensors validates the rest: offsets within the file, covering it exactly, sizes matching shapes.
        arrays = safetensors.numpy.load(data)
    except Exception as error:  # SafetensorError and friends: refuse with the path, not a bare parser error
        raise _refuse(path, str(error)) from None
    order = _saved_order(metadata, arrays)
    if order is None:
        order = sorted(header, key=lambda k: (header[k]["data_offsets"][0], header[k]["data_offsets"][1], k))
    return {key: arrays[key] for key in order}


def _saved_order(metadata, arrays) -> list[str] | None:
    """The key order normlab recorded at save time, if present and consistent with the file."""
    if not isinstance(metadata, dict) or _ORDER_KEY not in metadata:
        return None
    try:
        order = json.loads(metadata[_ORDER_KEY])
    except (TypeError, ValueError):
        return None
    if not isinstance(order, list) or len(order) != len(arrays) or set(order) != set(arrays):
        return None
    return order
