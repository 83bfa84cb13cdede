"""Exporting kept segmentations: one .seg.nrrd per volume and a volumes.csv.

The files use the command line tool's layout and columns
(OUT/<subject>/<subject>_P03.seg.nrrd, pancakes.label_volumes.COLUMNS), so
results from Slicer and from ``pancakes`` batch runs can be pooled. The
.seg.nrrd files are written by Slicer's segmentation storage node from the
segmentation nodes themselves, edits included.

Usage::

    report = exportProtocol(logic, m=2, folder="/data/out")
    report.files, report.volumesCsv
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import slicer

from pancakes.contract import output_path
from pancakes.subject_names import safe_name, unique_names
from pancakes.label_volumes import write_volumes_csv

from .Browse import segmentationVolumeRows
from .Keep import keepProtocol
from .Segments import segmentationInfo


@dataclass
class ExportReport:
    files: List[Path] = field(default_factory=list)
    volumesCsv: Path = None
    rows: List[dict] = field(default_factory=list)


def writeSegmentation(segmentationNode, path) -> Path:
    """Write one segmentation node to ``path`` (.seg.nrrd) through a storage node outside the scene."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storageNode = slicer.vtkMRMLSegmentationStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.SetUseCompression(True)
    if not storageNode.WriteData(segmentationNode):
        raise OSError(f"could not write {path}")
    return path


def exportSegmentations(segmentationNodes, subjects: List[str], folder) -> ExportReport:
    """Pancakes segmentations with their subject names -> .seg.nrrd files and volumes.csv."""
    folder = Path(folder)
    report = ExportReport()
    for node, subject in zip(segmentationNodes, unique_names([safe_name(s) for s in subjects])):
        m = segmentationInfo(node)["m"]
        report.files.append(writeSegmentation(node, output_path(folder, subject, m, "seg.nrrd")))
        report.rows += segmentationVolumeRows(node, subject)
    report.volumesCsv = Path(write_volumes_csv(folder / "volumes.csv", report.rows))
    return report


def exportProtocol(logic, m: int, folder) -> ExportReport:
    """Keep protocol m for every finished volume (if not yet kept) and export those segmentations."""
    nodes = keepProtocol(logic, m)
    subjects = [logic.scene.GetNodeByID(segmentationInfo(n)["volumeID"]).GetName() for n in nodes]
    return exportSegmentations(nodes, subjects, folder)
