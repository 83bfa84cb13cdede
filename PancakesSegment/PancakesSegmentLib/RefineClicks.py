"""Markups to clicks: control points in RAS -> (row, col) clicks on one slice of a volume's voxels.

Positive and negative clicks come from markups fiducial nodes: either two lists
(positive, negative), or one list whose negative points say so in their label or
description (starting with "-", or containing "neg", "background" or "exclude").
Each control point goes world RAS -> IJK through the inverse of the volume's IJK-to-world
matrix (its IJKToRAS under its parent transforms, linear ones), so rotated, anisotropic and
transformed volumes need nothing special. All points must lie on one slice along one voxel axis.

Usage::

    positive, negative, labels = controlPointsRas(markupsNode, split=True)
    clicks = clicksOnSlice(volumeNode, positive, negative)   # SliceClicks: axis, index, (row, col) points
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pancakes.errors import PancakesInputError

from .SegmentSlabs import transformToWorld, volumeVoxels
from .VolumeConversion import ijkToRasMatrix

AXIS_NAMES = ("K", "J", "I")  # array axis a of the (k, j, i) voxel array is IJK axis 2 - a
NEGATIVE_WORDS = ("neg", "background", "exclude")
# A point may sit up to this many voxels off the slice it is assigned to: markups
# placed in a view that is not exactly aligned with the voxel grid.
SLICE_TOLERANCE = 1.0


@dataclass
class SliceClicks:
    """Clicks of one slice: array ``axis`` of the (k, j, i) voxels, slice ``index``, (row, col) points."""

    axis: int
    index: int
    positive: List[Tuple[float, float]] = field(default_factory=list)
    negative: List[Tuple[float, float]] = field(default_factory=list)


def isNegativePoint(label: str, description: str) -> bool:
    """Whether a control point of a single mixed list is a negative click (see module docstring)."""
    for text in (label or "", description or ""):
        t = text.strip().lower()
        if t.startswith("-") or any(w in t for w in NEGATIVE_WORDS):
            return True
    return False


def controlPointsRas(markupsNode, split: bool = False) -> Tuple[List[np.ndarray], List[np.ndarray], List[str]]:
    """Placed control points in world RAS -> (positive, negative, labels of all points).

    With ``split`` False every point is positive; with True negatives are told apart by
    isNegativePoint. Points still being placed (position not defined) are left out.
    """
    positive, negative, labels = [], [], []
    if markupsNode is None:
        return positive, negative, labels
    for i in range(markupsNode.GetNumberOfControlPoints()):
        if markupsNode.GetNthControlPointPositionStatus(i) != markupsNode.PositionDefined:
            continue
        ras = [0.0, 0.0, 0.0]
        markupsNode.GetNthControlPointPositionWorld(i, ras)
        label = markupsNode.GetNthControlPointLabel(i)
        negativePoint = split and isNegativePoint(label, markupsNode.GetNthControlPointDescription(i))
        (negative if negativePoint else positive).append(np.array(ras, dtype=float))
        labels.append(label)
    return positive, negative, labels


def ijkToWorldMatrix(volumeNode) -> np.ndarray:
    """4x4 matrix from the volume's IJK to world RAS, where markups and slice views place points: its IJKToRAS
    under its parent transforms. Raises PancakesInputError under a non-linear transform."""
    return transformToWorld(volumeNode) @ ijkToRasMatrix(volumeNode)


def rasToArrayIndex(volumeNode, ras: Sequence[float]) -> np.ndarray:
    """World RAS point -> continuous (k, j, i) voxel coordinates (integers at voxel centres)."""
    rasToIjk = np.linalg.inv(ijkToWorldMatrix(volumeNode))
    ijk = (rasToIjk @ np.array([*ras, 1.0]))[:3]
    return ijk[::-1]


def sliceAxisFromNormal(volumeNode, normalRas: Sequence[float]) -> int:
    """Array axis (0 = K, 1 = J, 2 = I) whose voxel direction in world RAS is most parallel to a slice normal."""
    axes = ijkToWorldMatrix(volumeNode)[:3, :3]
    axes = axes / np.linalg.norm(axes, axis=0)
    ijkAxis = int(np.argmax(np.abs(axes.T @ np.asarray(normalRas, dtype=float))))
    return 2 - ijkAxis


def sliceAxisFromViews(scene, volumeNode, ras: Sequence) -> Optional[int]:
    """The array axis of the first slice view (Red, Yellow, Green, others) whose plane holds ``ras``:
    one point or all of several (a view that crosses only the first point, e.g. after the
    user scrolled the one they clicked in, would pick an axis the other points are off)."""
    points = np.atleast_2d(np.asarray(ras, dtype=float))
    count = scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")
    nodes = [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode") for i in range(count)]
    order = {"Red": 0, "Yellow": 1, "Green": 2}
    spacing = min(np.linalg.norm(ijkToWorldMatrix(volumeNode)[:3, :3], axis=0))
    for node in sorted(nodes, key=lambda n: order.get(n.GetLayoutName(), 3)):
        sliceToRas = node.GetSliceToRAS()
        normal = np.array([sliceToRas.GetElement(r, 2) for r in range(3)])
        origin = np.array([sliceToRas.GetElement(r, 3) for r in range(3)])
        if np.all(np.abs((points - origin) @ (normal / np.linalg.norm(normal))) <= 0.5 * spacing):
            return sliceAxisFromNormal(volumeNode, normal)
    return None


def _nearestVoxel(coords):
    """Voxel index holding continuous coordinates: halves round up, as Slicer's nearest-neighbour
    slice display does (np.round sends 2.5 to slice 2 but 3.5 to slice 4)."""
    return np.floor(np.asarray(coords, dtype=float) + 0.5)


def clicksOnSlice(volumeNode, positiveRas: Sequence, negativeRas: Sequence, axis: Optional[int] = None,
                  labels: Optional[Sequence[str]] = None) -> SliceClicks:
    """RAS clicks -> SliceClicks on one slice of ``volumeNode``.

    axis: array axis (0 = K, 1 = J, 2 = I) to slice along; None picks the axis along
    which the points spread least (K when tied, e.g. for one point). Raises
    PancakesInputError for points outside the volume or on different slices.
    """
    points = [(p, True) for p in positiveRas] + [(p, False) for p in negativeRas]
    if not points:
        raise PancakesInputError("no clicks: place at least one positive or negative point")
    dims = np.array(volumeVoxels(volumeNode).shape[:3])
    names = list(labels) if labels and len(labels) == len(points) else [f"point {n + 1}" for n in range(len(points))]
    coords = []
    for (ras, _), name in zip(points, names):
        kji = rasToArrayIndex(volumeNode, ras)
        if np.any(_nearestVoxel(kji) < 0) or np.any(_nearestVoxel(kji) >= dims):
            raise PancakesInputError(f"{name} at RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) is outside "
                                     f"volume '{volumeNode.GetName()}'")
        coords.append(kji)
    coords = np.array(coords)
    if axis is None:
        spread = np.ptp(coords, axis=0)
        axis = int(np.flatnonzero(spread <= spread.min() + 1e-6)[0])
    if axis not in (0, 1, 2):
        raise PancakesInputError(f"axis {axis!r}: use 0 (K), 1 (J) or 2 (I)")
    index = int(np.clip(_nearestVoxel(np.median(coords[:, axis])), 0, dims[axis] - 1))
    off = np.abs(coords[:, axis] - index)
    if off.max() > SLICE_TOLERANCE:
        where = sorted({int(v) for v in _nearestVoxel(coords[:, axis])})
        raise PancakesInputError(f"the points lie on different slices along {AXIS_NAMES[axis]} ({where}); "
                                 "place all clicks of one refinement on one slice")
    plane = [a for a in range(3) if a != axis]
    clicks = SliceClicks(axis, index)
    for (_, positive), c in zip(points, coords):
        rc = tuple(float(np.clip(c[a], 0, dims[a] - 1)) for a in plane)
        (clicks.positive if positive else clicks.negative).append(rc)
    return clicks
