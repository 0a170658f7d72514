"""Checkpoints: ``save(obj, path)`` / ``load(path)`` as safetensors files, never pickle.

A safetensors file is an 8-byte little-endian header length, a JSON header
(each tensor's dtype, shape and byte range) and the raw bytes; loading runs
no code, unlike pickle-based formats. A flat ``state_dict`` is stored as
the same file torch writes with ``safetensors.torch.save_file``, so it loads
into the equivalent torch model and the reverse::

    torch_model.load_state_dict(safetensors.torch.load_file(path))       # normlab -> torch
    model.load_state_dict(normlab.load(path))                             # torch -> normlab

A training checkpoint as torch users write it also works::

    normlab.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    checkpoint = normlab.load(path)

Its arrays are stored as tensors named by their path (``model.fc.weight``,
``optimizer.state.0.exp_avg``); the nesting (dicts with str/int keys,
lists, tuples) and the other values (numbers, strings, bools, None) are
stored as JSON in the header's metadata.

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

import io
import json
import math
import os
import secrets
import zipfile
from collections.abc import Mapping

import numpy as np
import safetensors.numpy

from normlab.autograd.tensor import Tensor

__all__ = ["save", "load"]

# The header metadata entry that remembers the state_dict's key order
# (safetensors itself lays tensors out sorted by alignment and name).
_ORDER_KEY = "normlab.key_order"
# The header metadata entry that holds a nested checkpoint's structure (JSON).
_STRUCTURE_KEY = "normlab.structure"

# safetensors dtype codes that NumPy can hold (bfloat16 and float8 it cannot).
_FILE_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_SAVABLE = {np.dtype(t) for t in _FILE_DTYPES.values()}

_CHUNK = 1 << 24  # write 16 MiB at a time


def _is_array(value) -> bool:
    return isinstance(value, (Tensor, np.ndarray, np.generic))


def _as_savable_array(key: str, value) -> np.ndarray:
    array = value._data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype not in _SAVABLE:
        raise TypeError(
            f"normlab.save: dtype {array.dtype} of key {key!r} cannot be stored "
            f"(supported: {', '.join(sorted(str(d) for d in _SAVABLE))})"
        )
    # safetensors reads the raw buffer: it must be C-contiguous (slices, transposes are copied).
    return array if array.flags.c_contiguous else np.array(array, order="C")


# ----------------------------------------------------------------------------
# Nested checkpoints: the tree as JSON, the arrays as named tensors
# ----------------------------------------------------------------------------

_KEY_TYPES = (str, int, float, bool, type(None))


def _encode(value, path: str, where: str, arrays: dict):
    """The JSON node for ``value``; its arrays go into ``arrays`` under unique names derived from ``path``."""
    if _is_array(value):
        name, suffix = path or "tensor", 1
        while name in arrays:
            suffix += 1
            name = f"{path}~{suffix}"
        arrays[name] = _as_savable_array(name, value)
        kind = "Tensor" if isinstance(value, Tensor) else "scalar" if isinstance(value, np.generic) else "array"
        return {"tensor": name, "kind": kind}
    if value is None or isinstance(value, (bool, int, str)):
        return {"value": value}
    if isinstance(value, float):
        # JSON has no inf or nan: store those as text.
        return {"value": value} if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, _KEY_TYPES) or isinstance(key, float) and not math.isfinite(key):
                raise TypeError(f"normlab.save: dict keys must be str, int, float, bool or None, "
                                f"got {type(key).__name__} at {where}")
            items.append([key, _encode(item, f"{path}.{key}" if path else str(key), f"{where}[{key!r}]", arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        nodes = [_encode(item, f"{path}.{i}" if path else str(i), f"{where}[{i}]", arrays)
                 for i, item in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": nodes}
    raise TypeError(f"normlab.save: cannot store a {type(value).__module__}.{type(value).__qualname__} at {where} "
                    "(a checkpoint holds arrays, Tensors, numbers, strings, bools, None, and dicts, lists and "
                    "tuples of them; normlab never pickles arbitrary objects)")


def _decode(node, arrays: dict):
    if "tensor" in node:
        array = arrays[node["tensor"]]
        return Tensor(array) if node["kind"] == "Tensor" else array[()] if node["kind"] == "scalar" else array
    if "value" in node:
        return node["value"]
    if "float" in node:
        return float(node["float"])
    if "dict" in node:
        return {key: _decode(item, arrays) for key, item in node["dict"]}
    items = [_decode(item, arrays) for item in node.get("list", node.get("tuple", []))]
    return tuple(items) if "tuple" in node else items


def _is_flat_state_dict(obj: Mapping) -> bool:
    """A dict of str -> array: stored as a plain safetensors file (what torch's load_file reads)."""
    return all(isinstance(k, str) and _is_array(v) for k, v in obj.items())


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


def save(obj, f, *, metadata: dict[str, str] | None = None) -> None:
    """Write ``obj`` to ``f`` (a path, written atomically, or a binary file object) as a safetensors file.

    ``obj`` is a ``state_dict`` (str -> array or Tensor: a plain safetensors
    file that ``safetensors.torch.load_file`` reads into a torch model) or a
    checkpoint dict nesting dicts, lists and tuples of arrays, Tensors,
    numbers, strings, bools and None (e.g. ``{"model": ..., "optimizer": ...,
    "epoch": 3}``). ``metadata`` (str -> str) is stored in the header. Keys
    keep their order.

    >>> import os, tempfile, numpy as np, normlab
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> normlab.save({"w": np.eye(2, dtype=np.float32)}, path)
    >>> normlab.load(path)["w"]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    if not isinstance(obj, Mapping):
        raise TypeError(f"normlab.save: expected a dict (a state_dict or a checkpoint dict), got {type(obj).__name__}")
    for key in obj:
        if not isinstance(key, str):
            raise TypeError(f"normlab.save: keys must be strings, got {type(key).__name__} {key!r}")
        if key == "__metadata__":
            raise ValueError("normlab.save: the key '__metadata__' is reserved by the safetensors format")
    header_metadata = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in metadata.items()):
            raise TypeError("normlab.save: metadata must map strings to strings")
        if {_ORDER_KEY, _STRUCTURE_KEY} & set(metadata):
            raise ValueError(f"normlab.save: the metadata keys {_ORDER_KEY!r} and {_STRUCTURE_KEY!r} are normlab's own")
        header_metadata.update(metadata)
    if _is_flat_state_dict(obj):
        arrays = {key: _as_savable_array(key, value) for key, value in obj.items()}
    else:
        arrays = {}
        header_metadata[_STRUCTURE_KEY] = json.dumps(_encode(obj, "", "checkpoint", arrays))
    header_metadata[_ORDER_KEY] = json.dumps(list(arrays))
    data = safetensors.numpy.save(arrays, metadata=header_metadata)
    if hasattr(f, "write"):
        _write_all(f, data)
        return

    path = os.fspath(f)
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


def load(f, map_location=None, *, weights_only: bool = True, mmap=None):
    """Read a safetensors file (a path or a binary file object); no code runs.

    A flat ``state_dict`` comes back as a dict of NumPy arrays, a nested
    checkpoint as it was saved (arrays as arrays, Tensors as Tensors). A file
    written by normlab keeps its key order; any other (e.g. torch's
    ``safetensors.torch.save_file``) comes back in the order of its bytes.
    ``map_location`` may only name the CPU; ``weights_only`` and ``mmap`` are
    accepted for torch code (loading never runs code).

    A truncated, corrupt or non-safetensors file raises ValueError naming the
    path; a PyTorch pickle checkpoint (``torch.save``) is recognised from its
    first bytes, never unpickled, and the message says how to convert it; a
    dtype NumPy lacks (bfloat16) raises ValueError naming the key.
    """
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        from normlab._device import check_device
        check_device(map_location, "normlab.load(map_location=...)")
    if hasattr(f, "read"):
        path, data = getattr(f, "name", "<file object>"), f.read()
    else:
        path = os.fspath(f)
        with open(path, "rb") as file:
            data = file.read()
    # Check the framing ourselves first, for messages that say what is wrong.
    if len(data) < 8:
        raise _refuse(path, f"{len(data)} bytes is too short to hold a header")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > len(data) - 8:
        raise _foreign(path, data) or _refuse(
            path, f"the header claims {header_length} bytes but the file has {len(data) - 8} after the length "
                  f"(truncated, or not a safetensors file){_looks_like(data)}")
    try:
        header = json.loads(data[8:8 + header_length])
    except (UnicodeDecodeError, ValueError) as error:
        raise _foreign(path, data) or _refuse(path, f"the header is not JSON ({error})") from None
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
    if _STRUCTURE_KEY in metadata:
        try:
            return _decode(json.loads(metadata[_STRUCTURE_KEY]), arrays)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise _refuse(path, f"its normlab structure entry is corrupt ({error!r})") from None
    order = _saved_order(metadata, arrays)
    if order is None:
        order = sorted(header, key=lambda k: (header[k]["data_offsets"][0], header[k]["data_offsets"][1], k))
    return {key: arrays[key] for key in order}


_CONVERT = ("Convert it once in PyTorch: `sd = torch.load(path, weights_only=True)` (for a training checkpoint, "
            "take the model's entry, e.g. `sd = sd['model']`), then `safetensors.torch.save_file(sd, "
            "'model.safetensors')`; normlab.load reads that file.")


def _foreign(path: str, data: bytes) -> ValueError | None:
    """A clear refusal for a file in a pickle-based format, recognised from its bytes without unpickling."""
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()  # reads the directory only
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if any(name.endswith("data.pkl") for name in names):
            return _refuse(path, "it is a PyTorch pickle checkpoint (written by torch.save), which normlab will "
                                 "not unpickle (unpickling can run arbitrary code). " + _CONVERT)
        if names and all(name.endswith(".npy") for name in names):
            return _refuse(path, "it is a NumPy .npz archive; read it with numpy.load(path) and pass the arrays "
                                 "to load_state_dict or normlab.save")
        return _refuse(path, "it is a zip archive")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return _refuse(path, "it is a Python pickle (an old-style torch.save file or pickle.dump), which normlab "
                             "will not unpickle (unpickling can run arbitrary code). " + _CONVERT)
    return None


def _looks_like(data: bytes) -> str:
    return "; it starts like a zip archive (torch.save writes those)" if data[:4] == b"PK\x03\x04" else ""


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
