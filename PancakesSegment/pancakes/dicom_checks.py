"""Refusing DICOM files whose structure GDCM would misread into gigabytes, before ITK sees them.

One flipped byte in a 2 kB DICOM file (the first file-meta tag, (0002,0000) read as
(0012,0000)) made ``sitk.ReadImage`` reach 2.9 GB of resident memory before it gave up
(found by Testing/Python/reader_fuzz.py); a bad length field does the same. A Part 10
file ('DICM' at byte 128) is walked here element by element, top level only: the file
meta group must come first, and no element may claim more bytes than the file has left.
An undefined length (sequences, encapsulated pixel data) ends the walk: what follows is
nested, and GDCM checks it against the file as it goes. Files without the 'DICM' marker
(old ACR-NEMA style) are left to GDCM.

Usage::

    reason = dicom_reason("IM0001")   # None: not Part 10, or its top level is consistent
"""
from __future__ import annotations

import os
import struct
from typing import Optional

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT_LE, _EXPLICIT_BE, _DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"


def _walk(data: bytes, at: int, explicit: bool, endian: str, only_group: Optional[int] = None):
    """Yield (offset, group, element, value) of top-level elements from ``at``; raise ValueError
    at the first element that runs past the end. Stops at an undefined length, or (with
    ``only_group``) before the first element of another group."""
    end = len(data)
    while at < end:
        if at + 8 > end:
            raise ValueError(f"an element header at byte {at} is cut off by the end of the file")
        group, element = struct.unpack_from(endian + "HH", data, at)
        if only_group is not None and group != only_group:
            return
        vr = data[at + 4 : at + 6]
        if explicit and vr in _LONG_VRS:
            if at + 12 > end:
                raise ValueError(f"an element header at byte {at} is cut off by the end of the file")
            (length,), start = struct.unpack_from(endian + "I", data, at + 8), at + 12
        elif explicit:
            (length,), start = struct.unpack_from(endian + "H", data, at + 6), at + 8
        else:
            (length,), start = struct.unpack_from(endian + "I", data, at + 4), at + 8
        if length == _UNDEFINED:
            return
        if start + length > end:
            raise ValueError(f"element ({group:04X},{element:04X}) claims {length} bytes; the file has "
                             f"{end - start} left")
        yield at, group, element, data[start : start + length]
        at = start + length


def dicom_reason(path: str) -> Optional[str]:
    """Why a DICOM Part 10 file's top-level structure is inconsistent, or None (also for non-DICOM files)."""
    try:
        if os.path.getsize(path) > 1 << 31:  # a multi-GB single file: leave it to GDCM, do not load it here
            return None
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    try:
        if len(data) < 140 or struct.unpack_from("<H", data, 132)[0] != 0x0002:
            return "DICOM file is corrupt: its file meta information does not follow the 'DICM' marker"
        syntax, at = None, 132
        for at, group, element, value in _walk(data, 132, True, "<", only_group=0x0002):
            if element == 0x0010:
                syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        at = _after_meta(data)
        if syntax is None or syntax == _DEFLATED:
            return None  # no transfer syntax to read the rest by (GDCM decides), or compressed data
        for _ in _walk(data, at, syntax != _IMPLICIT_LE, ">" if syntax == _EXPLICIT_BE else "<"):
            pass
    except ValueError as exc:
        return f"DICOM file is corrupt: {exc}"
    return None


def _after_meta(data: bytes) -> int:
    """Offset of the first data set element after the file meta group."""
    end = 132
    for at, _, _, value in _walk(data, 132, True, "<", only_group=0x0002):
        end = at + (12 if data[at + 4 : at + 6] in _LONG_VRS else 8) + len(value)
    return end
