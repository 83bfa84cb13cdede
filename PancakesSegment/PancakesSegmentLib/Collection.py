"""The collection: which volumes of the scene to segment, and loading a folder of them.

Files are loaded through Slicer's volumes logic (archetype storage nodes), the
way Slicer's own "Add data" does, so the nodes are ordinary volumes with a
storage node. Headers are read first so that 4D and vector files are refused
with a reason, one file at a time, while the rest of the folder loads.

Usage::

    nodes, errors = loadVolumeFolder(scene, "/data/study")
    for e in errors:
        print(e.path, e.message)
    candidates = scalarVolumeNodes(scene)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import slicer
import SimpleITK as sitk

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".hdr")
SKIPPED_SUFFIXES = (".seg.nrrd", ".seg.nhdr")  # segmentations, not images


@dataclass
class LoadError:
    """A file of the folder that did not become a volume, and why."""

    path: str
    message: str


def scalarVolumeNodes(scene) -> List:
    """Scalar volumes a user can pick (labelmaps and hidden nodes excluded), in scene order."""
    nodes = []
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
        if node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetHideFromEditors():
            continue
        nodes.append(node)
    return nodes


def volumeFiles(folder) -> List[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name; segmentations skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    files = []
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        if not path.is_file() or name.startswith(".") or name.endswith(SKIPPED_SUFFIXES):
            continue
        if name.endswith(VOLUME_EXTENSIONS):
            files.append(path)
    return files


def volumeName(path) -> str:
    """File name without its (possibly double) extension: 'ct.nii.gz' -> 'ct'."""
    name = Path(path).name
    for ext in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def checkVolumeFile(path) -> None:
    """Read the header only; raise ValueError naming why Pancakes cannot use the file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise ValueError(f"cannot read the image header ({first})") from None
    dims = reader.GetDimension()
    size = reader.GetSize()
    if dims > 3 and any(s > 1 for s in size[3:]):
        raise ValueError(f"{dims}D image (size {tuple(size)}); Pancakes needs a 3D scalar volume")
    if 0 in size:
        raise ValueError(f"empty image (size {tuple(size)})")
    if reader.GetNumberOfComponents() > 1:
        raise ValueError(f"vector-valued image ({reader.GetNumberOfComponents()} components per voxel)")


def loadVolumeFile(scene, path, volumesLogic=None):
    """Load one file as a scalar volume node; raises ValueError with the reason."""
    checkVolumeFile(path)
    if volumesLogic is None:
        volumesLogic = slicer.vtkSlicerVolumesLogic()
        volumesLogic.SetMRMLScene(scene)
    node = volumesLogic.AddArchetypeVolume(os.fspath(path), volumeName(path))
    if node is None:
        raise ValueError("Slicer could not read the file")
    return node


def loadVolumeFolder(scene, folder, volumesLogic=None) -> Tuple[List, List[LoadError]]:
    """Every image file of ``folder`` as a volume node; failures are collected, the rest load."""
    nodes, errors = [], []
    for path in volumeFiles(folder):
        try:
            nodes.append(loadVolumeFile(scene, path, volumesLogic))
        except ValueError as error:
            errors.append(LoadError(str(path), str(error)))
    return nodes, errors
