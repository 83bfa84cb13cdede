"""Catching truncated image files that ITK reads without complaint.

ITK's NIfTI reader zero-fills the voxels a truncated ``.nii`` or ``.nii.gz``
lacks (an interrupted download or copy) and reports no error, so the batch
would segment half a scan as if it were whole. NRRD, MetaImage and PNG readers
already fail on such files, but ITK's MetaImage error blames a leftover errno
("No such file or directory") about a file that exists; metaimage_reason says
what is really wrong.

Usage::

    if nifti_truncated("scan.nii.gz"): ...
    reason = metaimage_reason("scan.mhd")   # None when it has nothing better to say
"""
from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from typing import Optional

# (sizeof_hdr, offset and struct format of dim[8], of bitpix, of vox_offset) for NIfTI-1 and NIfTI-2.
_LAYOUTS = ((348, (40, "8h"), (72, "h"), (108, "f")), (540, (16, "8q"), (14, "h"), (168, "q")))
_CHUNK = 1 << 20


def _expected_bytes(header: bytes) -> Optional[int]:
    """Bytes a complete single-file NIfTI holds (header + voxels), or None if ``header`` is not one."""
    for size, dim_at, bitpix_at, offset_at in _LAYOUTS:
        for endian in "<>":
            if len(header) < size or struct.unpack_from(endian + "i", header)[0] != size:
                continue
            dim, (bitpix,), (offset,) = (struct.unpack_from(endian + fmt, header, at)
                                         for at, fmt in (dim_at, bitpix_at, offset_at))
            if not 1 <= dim[0] <= 7 or bitpix <= 0 or any(d < 0 for d in dim[1 : dim[0] + 1]):
                return None  # an odd header: leave the verdict to ITK
            voxels = 1
            for d in dim[1 : dim[0] + 1]:
                voxels *= max(int(d), 1)
            return int(offset) + voxels * bitpix // 8
    return None


def nifti_truncated(path: str) -> bool:
    """True when a ``.nii``/``.nii.gz`` file holds less voxel data than its header describes.

    ``.nii.gz`` is decompressed as a stream up to the needed length (nothing is
    kept in memory). Files that are not NIfTI, or whose header cannot be parsed,
    give False: ITK has the say on those.
    """
    low = path.lower()
    if not low.endswith((".nii", ".nii.gz")):
        return False
    have, needed = 0, None
    with (gzip.open if low.endswith(".gz") else open)(path, "rb") as f:
        try:
            header = f.read(_LAYOUTS[1][0])
            have, needed = len(header), _expected_bytes(header)
            while needed is not None and have < needed:
                chunk = f.read(min(_CHUNK, needed - have))
                if not chunk:
                    break
                have += len(chunk)
        except (EOFError, zlib.error, gzip.BadGzipFile):  # the gzip stream itself ends early or breaks
            return needed is not None
    return needed is not None and have < needed


def metaimage_reason(path: str) -> Optional[str]:
    """Why a MetaImage (.mha/.mhd) whose header is fine yields no voxels: a missing or short data file."""
    if not path.lower().endswith((".mha", ".mhd")):
        return None
    try:
        with open(path, "rb") as f:
            header = f.read(8192)  # a text header of key = value lines; ElementDataFile comes last
    except OSError:
        return None
    match = re.search(rb"^ElementDataFile\s*=\s*(.*?)\s*$", header, re.M)
    if match is None:
        return None
    data = match[1].decode("utf-8", "replace")
    if data == "LOCAL":
        return "image data is truncated or corrupt (the file holds less than its header describes)"
    if data == "LIST" or "%" in data:  # slice lists and patterns: too many files to second-guess
        return None
    if not os.path.isfile(os.path.join(os.path.dirname(path), data)):
        return f"the data file {data!r} named in its header is missing"
    return f"the data file {data!r} named in its header is truncated or corrupt"
