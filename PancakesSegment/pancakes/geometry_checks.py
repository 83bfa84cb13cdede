"""Catching voxel geometry that ITK reads wrongly, or that no scanner writes.

ITK's NRRD reader replaces a spacing it cannot use (NaN, or a ``space directions``
vector whose length overflows, such as 1e308) with 1 mm and says nothing, so label
volumes would come out in the wrong unit. A spacing it does keep can still be absurd
(1e308 mm overflows every volume product). Both get one line naming the problem.

Usage::

    reason = nrrd_spacing_reason("scan.nrrd", image) or geometry_reason(image)   # None: fine
"""
from __future__ import annotations

import math
import re
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

# 100 m: far above any voxel of medical or microscopy images, far below where volumes overflow.
MAX_SPACING_MM = 1e5


def geometry_reason(image: sitk.Image) -> Optional[str]:
    """Why ``image``'s spacing, origin or direction cannot be right, or None."""
    spacing = image.GetSpacing()
    for axis, s in enumerate(spacing):
        if not math.isfinite(s) or s <= 0:
            return f"voxel spacing {s:g} along axis {axis} is not a positive finite number"
        if s > MAX_SPACING_MM:
            return f"voxel spacing {s:g} mm along axis {axis} is implausible (over {MAX_SPACING_MM:g} mm)"
    if not all(math.isfinite(o) for o in image.GetOrigin()):
        return f"origin {image.GetOrigin()} is not finite"
    n = image.GetDimension()
    direction = np.array(image.GetDirection(), float).reshape(n, n)
    if not np.isfinite(direction).all() or abs(np.linalg.det(direction)) < 1e-6:
        return "direction matrix is not finite or not invertible"
    # Directions are unit vectors (a sheared gantry-tilt grid keeps unit columns); MetaImage takes a
    # TransformMatrix as written, and one with columns of length 1e30 sent two image axes to one
    # patient axis when the volume was reoriented (found by Testing/Python/reader_fuzz.py).
    lengths = np.linalg.norm(direction, axis=0)
    if not np.allclose(lengths, 1.0, atol=1e-3):
        return f"direction matrix columns are not unit vectors (lengths {', '.join(f'{v:g}' for v in lengths)})"
    if len(set(np.abs(direction).argmax(axis=0).tolist())) < n:
        return "direction matrix sends two image axes along the same patient axis"
    return None


def _header(path: str) -> List[str]:
    """The text header lines of a NRRD file (up to the blank line), or [] when unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return []
    text = head.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return text.splitlines()


def _header_spacings(lines: List[str]) -> Optional[List[float]]:
    """Per-axis spacing as the header states it (``space directions`` lengths or ``spacings``)."""
    fields = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip().lower()] = value.strip()
    if "space directions" in fields:
        out = []
        for vec in re.findall(r"\(([^)]*)\)|none", fields["space directions"]):
            if vec == "":  # "none": a non-spatial axis (e.g. colour)
                continue
            try:
                comps = [float(v) for v in vec.split(",")]
            except ValueError:
                return None
            with np.errstate(over="ignore", invalid="ignore"):
                out.append(float(np.linalg.norm(comps)))
        return out
    if "spacings" in fields:
        try:
            return [float(v) for v in fields["spacings"].split()]
        except ValueError:
            return None
    return None


def nrrd_spacing_reason(path: str, image: sitk.Image) -> Optional[str]:
    """Why the spacing ITK read from a .nrrd/.nhdr file is not the header's, or None."""
    if not path.lower().endswith((".nrrd", ".nhdr")):
        return None
    stated = _header_spacings(_header(path))
    if not stated or len(stated) != image.GetDimension():
        return None  # no spacing stated, or a non-spatial axis (NaN by the format) we cannot align
    for axis, (want, got) in enumerate(zip(stated, image.GetSpacing())):
        if not math.isfinite(want):
            return (f"the header's voxel spacing along axis {axis} is {want:g}, not a usable number "
                    f"(ITK would silently use {got:g} mm)")
        if not math.isclose(abs(want), got, rel_tol=1e-6):  # a negative spacing flips the direction instead
            return f"the header's voxel spacing along axis {axis} ({want:g}) was read as {got:g} mm"
    return None
