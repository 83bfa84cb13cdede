"""Refusing files whose header claims more voxel data than the file can hold, before reading them.

A NRRD header saying ``sizes: 6 32767 32767`` over 6 kB of data made ITK allocate and
fill 12.9 GB before it noticed the data ran out (found by the reader fuzzer,
Testing/Python/reader_fuzz.py): on a smaller machine the OOM killer ends the batch.
The header is read on its own first; a claim beyond what the bytes on disk can hold
gets one line instead. Uncompressed data cannot be larger than the file; deflate and
bzip2 expand at most ~1,032 and ~46,000 times (a stream of one repeated byte).

Usage::

    reason = claimed_size_reason("scan.nrrd")   # None: plausible, or not a single-file format
"""
from __future__ import annotations

import math
import os
import re
from typing import Optional

import SimpleITK as sitk

_RATIO = {"gzip": 1100, "bzip2": 50000}  # highest expansion of each codec, rounded up
_SINGLE_FILE = (".nii", ".nii.gz", ".nrrd", ".mha")  # data in the same file as the header
# Smaller claims are left to the readers, whose own messages on a short file are more specific
# (integrity.py); the check is there to stop allocations that endanger the machine.
MIN_CLAIM_BYTES = 100_000_000


def _codec(path: str) -> Optional[str]:
    """'gzip', 'bzip2' or None (raw) for the voxel data of a single-file image."""
    low = path.lower()
    if low.endswith(".nii.gz"):
        return "gzip"
    if low.endswith(".nii"):
        return None
    with open(path, "rb") as f:
        head = f.read(65536).split(b"\n\n", 1)[0].decode("latin-1").lower()
    if low.endswith(".nrrd"):
        m = re.search(r"^encoding:\s*(\S+)", head, re.M)
        enc = m.group(1) if m else "raw"
        return {"gz": "gzip", "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2"}.get(enc)
    m = re.search(r"^compresseddata\s*=\s*(\S+)", head, re.M)  # .mha (MetaImage): zlib
    return "gzip" if m and m.group(1) == "true" else None


def _pixel_bytes(reader: sitk.ImageFileReader) -> int:
    one = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(), max(1, reader.GetNumberOfComponents()))
    return sitk.GetArrayViewFromImage(one).nbytes


def claimed_size_reason(path: str) -> Optional[str]:
    """Why the header of a single-file image claims more data than the file holds, or None."""
    if not path.lower().endswith(_SINGLE_FILE):
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
        claimed = math.prod(int(s) for s in reader.GetSize()) * _pixel_bytes(reader)
        codec = _codec(path)
    except (RuntimeError, OSError, ValueError):
        return None  # the full read reports what is wrong
    have = os.path.getsize(path)
    if claimed <= max(have * _RATIO.get(codec, 1), MIN_CLAIM_BYTES):
        return None
    size = "x".join(str(s) for s in reader.GetSize())
    held = "" if codec is None else f" even at {codec}'s highest compression"
    return (f"header describes {size} voxels ({claimed / 1e9:.3g} GB), more than the {have} bytes of the file "
            f"can hold{held} (truncated or corrupt header)")
