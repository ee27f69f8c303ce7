"""A strict reader of IDX files (LeCun's MNIST format), gzipped or not.

Format (LeCun's MNIST page): a 4-byte magic number whose first two bytes are 0, byte 2 the type
code, byte 3 the number of dimensions; then one big-endian int32 per dimension; then the data in
C order, big-endian for multi-byte types.

Unlike torchvision's reader (asserts, stripped under ``python -O``; a short payload accepted with
``strict=False`` and failing later as a reshape error) every check here is real code and raises
:class:`~cnnlab.errors.DataError` naming the file and the field or byte offset.  A gzip stream is
read only as far as its header says, so a small ``.gz`` that inflates without end cannot fill
the memory.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab._io import file_hash
from cnnlab.errors import DataError

__all__ = ["IdxFile", "read_idx", "IDX_TYPES"]

# type code -> (numpy dtype, C name for messages)
IDX_TYPES: dict[int, tuple[str, str]] = {
    0x08: ("u1", "unsigned byte"),
    0x09: ("i1", "signed byte"),
    0x0B: (">i2", "short (int16)"),
    0x0C: (">i4", "int (int32)"),
    0x0D: (">f4", "float (float32)"),
    0x0E: (">f8", "double (float64)"),
}

# A payload above this many bytes is refused before any of it is read (a crafted header could
# otherwise ask for terabytes).  4 GiB holds 5 million 28x28 images.
MAX_PAYLOAD_BYTES = 4 << 30
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxFile:
    """A parsed IDX file: ``array`` (native byte order) and digests of what was read.

    ``sha256`` covers the decompressed content (header + payload), ``gz_md5`` the ``.gz``
    container as stored (``None`` for an uncompressed file).
    """

    path: Path
    array: np.ndarray
    type_code: int
    sha256: str
    gz_md5: str | None


def _type_table() -> str:
    return ", ".join(f"0x{code:02X} ({name})" for code, (_, name) in IDX_TYPES.items())


def _read_exactly(stream, n: int, buffer: bytearray | None = None) -> bytearray:
    """Read up to ``n`` bytes (fewer only at end of stream)."""
    out = bytearray(n) if buffer is None else buffer
    view = memoryview(out)
    got = 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            break
        got += k
    del view  # a live memoryview would forbid resizing below
    if got < n:
        del out[got:]
    return out


def read_idx(path: str | Path, *, ndim: int | None = None, what: str = "") -> IdxFile:
    """Parse the IDX file at ``path`` (plain or gzip, told apart by the gzip magic bytes).

    ``ndim``, when given, is the number of dimensions the caller needs (3 for images, 1 for
    labels); ``what`` names the content in messages ("images", "labels").  Raises
    :class:`DataError` naming the file for: a short header, non-zero leading magic bytes, an
    unknown type code, a wrong number of dimensions, a zero dimension, a payload over
    :data:`MAX_PAYLOAD_BYTES`, a payload shorter or longer than the header declares, and a
    corrupt gzip stream.
    """
    path = Path(path)
    label = f"{path}" + (f" ({what})" if what else "")
    try:
        with open(path, "rb") as raw:
            is_gz = raw.read(2) == _GZIP_MAGIC
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        if is_gz:
            with gzip.open(path, "rb") as stream:
                parsed = _parse(stream, path, label, ndim)
            gz_md5 = file_hash(path, "md5")
        else:
            with open(path, "rb") as stream:
                parsed = _parse(stream, path, label, ndim)
            gz_md5 = None
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(
            f"{label}: corrupt gzip stream ({exc}); the download is probably damaged"
        ) from exc
    except OSError as exc:
        raise DataError(f"{label}: cannot be read: {exc.strerror or exc}") from exc
    array, type_code, sha256 = parsed
    return IdxFile(path, array, type_code, sha256, gz_md5)


def _parse(stream, path: Path, label: str, ndim: int | None):
    """The array of an IDX stream, its type code and the SHA-256 of its bytes; every
    departure from the format is a DataError naming the byte."""
    header, type_code, dims = _read_header(stream, label, ndim)
    dtype = np.dtype(IDX_TYPES[type_code][0])
    payload = _read_payload(stream, label, dtype, dims)
    sha = hashlib.sha256(header)
    sha.update(payload)
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array, type_code, sha.hexdigest()


def _read_header(stream, label: str, ndim: int | None) -> tuple[bytes, int, tuple[int, ...]]:
    """The header's bytes, type code and dimensions (magic number, then 4 bytes a size)."""
    magic = bytes(_read_exactly(stream, 4))
    if len(magic) < 4:
        raise DataError(
            f"{label}: {len(magic)} bytes, too short for an IDX header (4-byte magic number, "
            "then 4 bytes per dimension)"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{label}: bad magic number 0x{magic.hex().upper()} at byte 0: an IDX file starts "
            "with two zero bytes (MNIST images are 0x00000803, labels 0x00000801); "
            "this is not an IDX file"
        )
    type_code, nd = magic[2], magic[3]
    if type_code not in IDX_TYPES:
        raise DataError(
            f"{label}: unknown IDX type code 0x{type_code:02X} at byte 2; valid codes are "
            f"{_type_table()}"
        )
    if nd == 0:
        raise DataError(f"{label}: the header declares 0 dimensions at byte 3")
    if ndim is not None and nd != ndim:
        shape = "N x rows x columns" if ndim == 3 else "N" if ndim == 1 else f"{ndim} sizes"
        raise DataError(
            f"{label}: the header declares {nd} dimensions at byte 3, expected {ndim} ({shape})"
        )
    dims_raw = bytes(_read_exactly(stream, 4 * nd))
    if len(dims_raw) < 4 * nd:
        raise DataError(
            f"{label}: truncated header: {nd} dimensions need {4 * nd} bytes of sizes after the "
            f"magic number, found {len(dims_raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    for i, d in enumerate(dims):
        if d == 0:
            raise DataError(
                f"{label}: dimension {i} (byte {4 + 4 * i}) is 0; the file holds no data"
            )
    return magic + dims_raw, type_code, dims


def _read_payload(stream, label: str, dtype: np.dtype, dims: tuple[int, ...]):
    """The data after the header: exactly what the dimensions declare, nothing after it."""
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    declared = " x ".join(str(d) for d in dims)
    if expected > MAX_PAYLOAD_BYTES:
        raise DataError(
            f"{label}: the header declares {declared} values ({expected:,} bytes), more than "
            f"cnnlab reads from one IDX file ({MAX_PAYLOAD_BYTES:,} bytes)"
        )
    payload = _read_exactly(stream, expected)
    if len(payload) < expected:
        raise DataError(
            f"{label}: truncated: the header declares {declared} values ({expected:,} bytes of "
            f"data), the file holds {len(payload):,} ({expected - len(payload):,} missing)"
        )
    extra = 0
    while extra <= _CHUNK:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        extra += len(chunk)
    if extra:
        more = f"more than {_CHUNK:,}" if extra > _CHUNK else f"{extra:,}"
        raise DataError(
            f"{label}: {more} extra bytes after the {expected:,} bytes of data the header "
            f"declares ({declared}); the file is damaged or not what its name says"
        )
    return payload
