"""Exporting kept segmentations of volumes loaded from DICOM as DICOM SEG, through the core writer.

A volume that Slicer's DICOM module loaded carries the SOP Instance UIDs of its slices
(attribute ``DICOM.instanceUIDs``); the DICOM database turns them back into files. Those
files are what the SEG references, exactly as ``pancakes segment --format dicom-seg``
does (pancakes.dicom_seg), so a SEG from Slicer and one from a batch run are alike:
the same segment numbers, labels, colours and algorithm identification. The voxels come
from the segmentation nodes themselves, edits included.

Usage::

    report = exportProtocolDicomSeg(logic, m=2, folder="/data/out")   # only volumes from DICOM
    dicomVolumesOfProtocol(logic, m=2)                                # which of them can be
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from pancakes.contract import output_path
from pancakes.subject_names import safe_name, unique_names

from .Export import ExportReport
from .Keep import keepProtocol
from .SegmentSlabs import segmentMask
from .Segments import protocolSegmentIds, segmentationInfo
from .VolumeConversion import imageFromVolumeNode

INSTANCE_UIDS = "DICOM.instanceUIDs"  # set by Slicer's DICOMScalarVolumePlugin on every volume it loads
FileForInstance = Callable[[str], str]


def _databaseLookup() -> Optional[FileForInstance]:
    import slicer

    database = getattr(slicer, "dicomDatabase", None)
    return database.fileForInstance if database is not None else None


def highdicomInstalled() -> bool:
    """Slicer's Python has pydicom but not highdicom, which the SEG writer needs (pip, on request)."""
    import importlib.util

    return importlib.util.find_spec("highdicom") is not None


def dicomSourceFiles(volumeNode, fileForInstance: Optional[FileForInstance] = None) -> Optional[List[str]]:
    """The DICOM files a volume was loaded from, or None when it was not loaded from DICOM
    (or a file is no longer in the database, so that the SEG could not reference it)."""
    uids = (volumeNode.GetAttribute(INSTANCE_UIDS) or "").split()
    lookup = fileForInstance or _databaseLookup()
    if not uids or lookup is None:
        return None
    files = [lookup(uid) for uid in uids]
    return files if all(files) and all(Path(f).is_file() for f in files) else None


def volumesFromDicom(volumeNodes: Sequence, fileForInstance: Optional[FileForInstance] = None) -> List:
    """The volumes that can be exported as DICOM SEG."""
    return [v for v in volumeNodes if dicomSourceFiles(v, fileForInstance) is not None]


def segmentationLabels(segmentationNode, volumeNode) -> sitk.Image:
    """The K segments of a Pancakes segmentation as one label volume (1..K) on the volume's grid."""
    info = segmentationInfo(segmentationNode)
    M, K, m = info["M"], info["K"], info["m"]
    reference = imageFromVolumeNode(volumeNode)
    labels = np.zeros(sitk.GetArrayViewFromImage(reference).shape[:3], np.uint8 if K < 256 else np.uint16)
    # Later segments win where edits made two overlap, as in a labelmap export from Slicer.
    for k, segmentId in enumerate(protocolSegmentIds(M, K, m)):
        labels[segmentMask(segmentationNode, segmentId, volumeNode)] = k + 1
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    return image


def exportDicomSegs(segmentationNodes: Sequence, volumeNodes: Sequence, folder, modelVersion: str,
                    modelSha256: str, fileForInstance: Optional[FileForInstance] = None) -> ExportReport:
    """OUT/<subject>/<subject>_P03.seg.dcm for each (segmentation, volume) whose volume came from DICOM."""
    from pancakes.dicom_seg import algorithm_identification, write_dicom_seg

    folder = Path(folder)
    algorithm = algorithm_identification(modelVersion, modelSha256)
    report = ExportReport()
    names = unique_names([safe_name(v.GetName()) for v in volumeNodes])
    for node, volume, subject in zip(segmentationNodes, volumeNodes, names):
        files = dicomSourceFiles(volume, fileForInstance)
        if files is None:
            continue
        info = segmentationInfo(node)
        path = output_path(folder, subject, info["m"], "dicom-seg")
        report.files.append(write_dicom_seg(path, segmentationLabels(node, volume), files, info["M"], info["K"],
                                            info["m"], algorithm))
    return report


def modelIdentity(logic) -> tuple:
    """(version, sha256) of the model the logic ran: what the SEG's algorithm identification names."""
    from pancakes.batch import file_sha256, model_version
    from pancakes.engine import bundled_model_path
    from pancakes.errors import ModelFileError

    try:
        sha = file_sha256(logic.modelPath or bundled_model_path())
    except (OSError, ModelFileError):  # a model set in memory (tests, self-test) has no file to hash
        sha = "unknown"
    return model_version(getattr(logic.model, "metadata", None) or {}), sha


def _keptVolumes(logic, m: int):
    nodes = keepProtocol(logic, m)
    return nodes, [logic.scene.GetNodeByID(segmentationInfo(n)["volumeID"]) for n in nodes]


def dicomVolumesOfProtocol(logic, m: int, fileForInstance: Optional[FileForInstance] = None) -> List:
    """The finished volumes whose protocol m can be exported as DICOM SEG (keeps m, as Export does)."""
    return volumesFromDicom(_keptVolumes(logic, m)[1], fileForInstance)


def exportProtocolDicomSeg(logic, m: int, folder, fileForInstance: Optional[FileForInstance] = None) -> ExportReport:
    """Keep protocol m for every finished volume (if not yet kept); DICOM SEG for those from DICOM."""
    nodes, volumes = _keptVolumes(logic, m)
    version, sha = modelIdentity(logic)
    return exportDicomSegs(nodes, volumes, folder, version, sha, fileForInstance)
