"""Is an image file whole? Checked before a reader sees it.

SimpleITK reads a truncated NIfTI (``.nii`` or ``.nii.gz``) without complaint and fills the
missing part with zeros: a CT cut in half would be segmented and measured as if its lower half
were water. A copy or download that did not finish is common, so every volume file is checked
here against what its own header promises, and a damaged gzip stream is named as such:

- gzip (any format): the whole stream decompresses and its checksum matches;
- NIfTI-1/-2: ``vox_offset`` plus the voxels its ``dim`` and ``bitpix`` describe are all there;
- NRRD and MetaImage (``.mha``/``.mhd``), raw or compressed, attached or detached data: the
  voxels ``sizes``/``DimSize`` and the type describe are all there.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import ImageReadError

_CHUNK = 1 << 22
_NRRD_TYPES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
               "int": 4, "int32": 4, "uint": 4, "uint32": 4, "longlong": 8, "int64": 8, "ulonglong": 8,
               "uint64": 8, "float": 4, "double": 8}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}


def _truncated(path: Path, have: int, expected: int) -> ImageReadError:
    return ImageReadError(f"{path} is truncated: it holds {have:,} of the {expected:,} bytes its header describes "
                          "(a copy or download that did not finish?)")


def _stream_length(path: Path, chunks, decompress) -> tuple[int, bytes]:
    """Bytes a compressed stream decodes to, and its first 1 KB; a damaged stream is refused."""
    length, head = 0, b""
    try:
        for chunk in chunks:
            data = decompress(chunk)
            if len(head) < 1024:
                head += data[:1024 - len(head)]
            length += len(data)
    except EOFError:
        raise ImageReadError(f"{path} is truncated: its compressed data end early (a copy or download that "
                             "did not finish?)") from None
    except (OSError, zlib.error) as exc:
        raise ImageReadError(f"{path} is corrupt: its compressed data do not decode ({exc})") from None
    return length, head


def _gzip_length(path: Path) -> tuple[int, bytes]:
    """Decompressed size and first 1 KB of a gzip file, checking its checksum on the way."""
    with gzip.open(path, "rb") as stream:
        return _stream_length(path, iter(lambda: stream.read(_CHUNK), b""), lambda data: data)


def _zlib_length(path: Path, offset: int, gzip_wrapped: bool) -> int:
    """Decompressed size of the zlib (or gzip) stream starting at ``offset``."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip_wrapped else zlib.MAX_WBITS)
    with open(path, "rb") as stream:
        stream.seek(offset)
        length, _ = _stream_length(path, iter(lambda: stream.read(_CHUNK), b""), decoder.decompress)
    if not decoder.eof:
        raise ImageReadError(f"{path} is truncated: its compressed data end early (a copy or download that "
                             "did not finish?)")
    return length


def _nifti_expected(header: bytes) -> int | None:
    """Bytes a NIfTI-1/-2 file should hold (header + voxels); None when ``header`` is not NIfTI."""
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0] if len(header) >= 4 else 0
        if size == 348 and len(header) >= 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    count = int(np.prod([max(1, d) for d in dims[1:1 + max(0, min(dims[0], 7))]], dtype=np.int64))
    return max(offset, 348) + count * max(bitpix, 8) // 8


def _text_header(path: Path, ends_with_blank_line: bool) -> tuple[dict[str, str], int] | None:
    """``key: value`` (NRRD) or ``key = value`` (MetaImage) fields and where the data start."""
    with open(path, "rb") as stream:
        raw = stream.read(1 << 16)
    fields, position = {}, 0
    for line in raw.split(b"\n"):
        position += len(line) + 1
        text = line.decode("latin-1").strip()
        if ends_with_blank_line and not text:
            return fields, position
        separator = ":" if ends_with_blank_line else "="
        if separator in text:
            key, value = text.split(separator, 1)
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
            if not ends_with_blank_line and key.strip().lower() == "elementdatafile":
                return fields, position
    return None


def _check_nrrd(path: Path) -> None:
    found = _text_header(path, ends_with_blank_line=True)
    if found is None:
        return
    fields, data_start = found
    try:
        expected = int(np.prod([int(v) for v in fields["sizes"].split()], dtype=np.int64)) \
            * _NRRD_TYPES[fields["type"].replace("signed ", "").replace("unsigned ", "u").replace(" ", "")]
    except (KeyError, ValueError):
        return   # a header SimpleITK will judge
    detached = fields.get("data file") or fields.get("datafile")
    data, offset = (path.parent / detached, 0) if detached else (path, data_start)
    _check_data(path, data, offset, expected, fields.get("encoding", "raw"))


def _check_meta(path: Path) -> None:
    found = _text_header(path, ends_with_blank_line=False)
    if found is None:
        raise ImageReadError(f"{path} is truncated: its header ends before ElementDataFile, which every "
                             "MetaImage header closes with")
    fields, data_start = found
    try:
        channels = int(fields.get("elementnumberofchannels", "1"))
        expected = int(np.prod([int(v) for v in fields["dimsize"].split()], dtype=np.int64)) \
            * _META_TYPES[fields["elementtype"].upper()] * channels
    except (KeyError, ValueError):
        return
    name = fields.get("elementdatafile", "LOCAL")
    if name.upper() == "LOCAL":
        data, offset = path, data_start
    elif " " in name or "%" in name or name.upper() == "LIST":
        return   # a list of slice files: SimpleITK opens each
    else:
        data, offset = path.parent / name, 0
    compressed = fields.get("compresseddata", "false").lower() == "true"
    _check_data(path, data, offset, expected, "zlib" if compressed else "raw")


def _check_data(path: Path, data: Path, offset: int, expected: int, encoding: str) -> None:
    """Whether ``data`` from ``offset`` holds ``expected`` bytes once decoded (raw, gzip or zlib)."""
    if not data.is_file():
        raise ImageReadError(f"{path}: its data file {data.name} is missing")
    if encoding == "raw":
        have = data.stat().st_size - offset
    elif encoding in ("gzip", "gz", "zlib"):
        have = _zlib_length(data, offset, gzip_wrapped=encoding != "zlib")
    else:
        return   # ascii, hex, bzip2: rare, and SimpleITK reports their short reads
    if have < expected:
        raise _truncated(path, max(have, 0), expected)


def check_whole(path) -> None:
    """Refuse a volume or image file that holds less than its header describes, or whose compressed
    data are damaged (``ImageReadError``, one line). Formats it does not know pass unchecked."""
    path = Path(path)
    with open(path, "rb") as stream:
        magic = stream.read(4)
    name = path.name.lower()
    if name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path)
    elif magic[:2] == b"\x1f\x8b":
        length, head = _gzip_length(path)
        expected = _nifti_expected(head)
        if expected is not None and length < expected:
            raise _truncated(path, length, expected)
    elif name.endswith(".nii"):
        with open(path, "rb") as stream:
            expected = _nifti_expected(stream.read(540))
        if expected is not None and path.stat().st_size < expected:
            raise _truncated(path, path.stat().st_size, expected)
