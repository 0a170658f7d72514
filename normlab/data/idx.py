"""IDX files (the format of MNIST and Fashion-MNIST), read from local paths only.

An IDX file starts with a 4-byte magic number: two zero bytes, a type code
and the number of dimensions; then one big-endian int32 per dimension; then
the values, big-endian, in C order. gzip-compressed files are recognised by
their content (the gzip magic bytes), not by the file name.

normlab never downloads anything: fetch the files yourself (e.g. from
https://github.com/zalandoresearch/fashion-mnist) and pass their paths.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "write_idx", "IDX_DTYPES", "MNIST_FILES"]

#: type code -> big-endian NumPy dtype, as the IDX format defines them.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of an MNIST-style directory (each may also carry a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read()
        except (OSError, EOFError) as error:
            raise ValueError(f"read_idx: {path} looks gzip-compressed but cannot be decompressed ({error})") from None
    return path.read_bytes()


def read_idx(path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a native-endian NumPy array.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a
    file that is not a valid IDX file (bad magic number, unknown type code,
    or a size that does not match the header).

    >>> import tempfile, os, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file: {path} (normlab reads local IDX files only; "
                                "it does not download)")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is too short to be an IDX file ({len(raw)} bytes)")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_DTYPES:
        raise ValueError(
            f"read_idx: {path} has bad magic number 0x{raw[:4].hex()}; expected 0x0000TTDD with type code TT "
            f"in {{{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}}} and DD the number of dimensions"
        )
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(f"read_idx: {path} ends inside its header ({ndim} dimensions need {header_end} bytes, "
                         f"the file has {len(raw)})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_end
    if payload != expected:
        raise ValueError(f"read_idx: {path} holds {payload} bytes of data but its header {shape} of {dtype.str[1:]} "
                         f"needs {expected}")
    array = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    # A native-endian, writable copy: big-endian views are slow and frombuffer's are read-only.
    return array.astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress`` or the name ends in ``.gz``)."""
    array = np.ascontiguousarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"write_idx: expected one of the IDX dtypes {sorted(str(d) for d in codes)}, "
                        f"got {array.dtype}")
    if array.ndim > 255:
        raise ValueError(f"write_idx: IDX allows at most 255 dimensions, got {array.ndim}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    body = header + array.astype(IDX_DTYPES[code]).tobytes()
    path = Path(os.fspath(path))
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(body) if compress else body)
