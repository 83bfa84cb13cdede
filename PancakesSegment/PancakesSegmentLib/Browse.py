"""Comparing protocols across the collection: label volumes per scan, and thumbnails for Qt.

Volumes are measured on the segmentation nodes, not on the model output, so a
kept segmentation that the user edited is measured as edited. Only the
protocol's own segments (IDs from pancakes.protocols) are counted, so tables
of different scans line up label for label.

Usage::

    rows = segmentationVolumeRows(segmentationNode, subject="brain1")   # volumes.csv rows
    header, table = volumeTable(rows)        # one row per label, one column (mm3) per scan
    rgb = pancakes.render.protocol_thumbnails(image, {2: labels}, M=8, K=20)[2]   # drawn in the core
    imageData = thumbnailImageData(rgb)      # for qMRMLUtils.vtkImageDataToQImage
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import vtk
from vtk.util import numpy_support

from pancakes import protocols
from pancakes.label_volumes import COLUMNS

from .Segments import segmentationInfo

BINARY_LABELMAP = "Binary labelmap"


def segmentVoxelCounts(segmentationNode) -> Dict[str, int]:
    """Voxels per segment ID, read from the binary labelmaps (shared layers counted once)."""
    segmentation = segmentationNode.GetSegmentation()
    counts: Dict[str, int] = {}
    layerCounts = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetNthSegment(i)
        labelmap = segment.GetRepresentation(BINARY_LABELMAP)
        scalars = labelmap.GetPointData().GetScalars() if labelmap is not None else None
        if scalars is None or labelmap.GetNumberOfPoints() == 0:
            counts[segmentId] = 0
            continue
        if labelmap not in layerCounts:  # segments of one layer share the labelmap object
            values = numpy_support.vtk_to_numpy(scalars)
            layerCounts[labelmap] = np.bincount(values.ravel().astype(np.int64, copy=False))
        bins = layerCounts[labelmap]
        value = segment.GetLabelValue()
        counts[segmentId] = int(bins[value]) if 0 < value < bins.size else 0
    return counts


def voxelVolumeMm3(segmentationNode) -> float:
    """Volume of one voxel of the segmentation's labelmaps: |det| of their image-to-world matrix.

    That is the product of the spacings for an orthonormal grid; on a sheared one (a
    gantry-tilted CT) voxels are smaller, and the CLI's volumes.csv
    (pancakes.label_volumes.voxel_volume_mm3) already counts them so: both must agree.
    """
    segmentation = segmentationNode.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        labelmap = segmentation.GetNthSegment(i).GetRepresentation(BINARY_LABELMAP)
        if labelmap is not None:
            matrix = vtk.vtkMatrix4x4()
            labelmap.GetImageToWorldMatrix(matrix)
            edges = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
            return float(abs(np.linalg.det(edges)))
    return 0.0


def segmentationVolumeRows(segmentationNode, subject: str) -> List[Dict]:
    """volumes.csv rows (every label of the protocol, empty ones as 0) of one Pancakes segmentation."""
    info = segmentationInfo(segmentationNode)
    if info is None:
        raise ValueError(f"{segmentationNode.GetName()} was not made by Pancakes")
    M, K, m = info["M"], info["K"], info["m"]
    counts = segmentVoxelCounts(segmentationNode)
    voxelMm3 = voxelVolumeMm3(segmentationNode)
    rows = []
    for k in range(K):
        segmentId = protocols.segment_id(M, K, m, k)
        n = counts.get(segmentId, 0)
        rows.append(dict(zip(COLUMNS, (subject, m + 1, k + 1, segmentId, n, n * voxelMm3))))
    return rows


def volumeTable(rows: Sequence[Dict]) -> Tuple[List[str], List[List]]:
    """Rows of several scans -> (header, table): one line per segment ID, mm3 per scan.

    header is ["segment_id", subject1, subject2, ...] in the order subjects first appear.
    """
    subjects: List[str] = []
    bySegment: Dict[str, Dict[str, float]] = {}
    for r in rows:
        if r["subject"] not in subjects:
            subjects.append(r["subject"])
        bySegment.setdefault(r["segment_id"], {})[r["subject"]] = float(r["volume_mm3"])
    table = [[segmentId] + [values.get(s, 0.0) for s in subjects] for segmentId, values in bySegment.items()]
    return ["segment_id"] + subjects, table


def thumbnailImageData(rgb: np.ndarray) -> vtk.vtkImageData:
    """An RGB thumbnail as vtkImageData for Qt (qMRMLUtils.vtkImageDataToQImage).

    VTK rows run bottom-up and that conversion flips them, so rows are stored
    reversed here and the thumbnail's first row ends up on top.
    """
    rgb = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[::-1])
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(rgb.shape[1], rgb.shape[0], 1)
    scalars = numpy_support.numpy_to_vtk(rgb.reshape(-1, 3), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    scalars.SetNumberOfComponents(3)
    imageData.GetPointData().SetScalars(scalars)
    return imageData
