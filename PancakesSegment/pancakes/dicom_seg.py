"""DICOM Segmentation (SEG) output: one instance per subject and protocol, written by highdicom.

The SEG references the source series and every source instance, takes the source's
Frame of Reference (and patient/study) from it, and describes segments 1..K with the
names and colours of :mod:`pancakes.protocols`, so label k of protocol m carries the same
segment number, label and recommended display colour (CIELab) for every subject.

Segmentation type BINARY, not LABELMAP: BINARY SEG (DICOM 2008) is read by every viewer
and PACS that reads SEG (Slicer, OHIF, 3D Slicer's QuantitativeReporting, dcmqi,
pydicom-seg), while LABELMAP (Supplement 243, 2024) is not yet. Empty frames are omitted,
which keeps a binary SEG of K=20 labels about the size of the labelmap.

highdicom is imported inside the functions: its import takes about a second, which runs
with other formats, and the Slicer module, need not pay.

Usage::

    algorithm = algorithm_identification(model_version="3", model_sha256=sha)
    write_dicom_seg("out/a/a_P03.seg.dcm", labels, subject.files, M=8, K=20, m=2, algorithm=algorithm)
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from . import __version__, protocols
from .errors import PancakesInputError
from .segio import atomic_write

PathLike = Union[str, Path]
MANUFACTURER = "Pancakes"
# SNOMED CT 'Tissue' as category and type: Pancakes labels are data-driven regions, not named anatomy.
_TISSUE = ("85756007", "SCT", "Tissue")


def algorithm_identification(model_version: str, model_sha256: str):
    """highdicom AlgorithmIdentificationSequence naming Pancakes, the model version and its file hash.

    The hash goes into the parameters (LT) because the version is an LO of at most 64 characters."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    version = f"pancakes {__version__} model {model_version} sha256:{model_sha256[:12]}"[:64]
    return hd.AlgorithmIdentificationSequence(
        name="Pancakes", family=codes.cid7162.ArtificialIntelligence, version=version,
        source="Pancakes multi-protocol segmentation", parameters={"model_sha256": model_sha256})


def segment_descriptions(M: int, K: int, m: int, algorithm) -> list:
    """The K SegmentDescriptions of protocol m: numbers 1..K, names and colours from (M, K, m, k)."""
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    tissue = CodedConcept(*_TISSUE)
    out = []
    for k in range(K):
        out.append(hd.seg.SegmentDescription(
            segment_number=protocols.label_value(M, K, m, k),
            segment_label=protocols.segment_name(M, K, m, k),
            segmented_property_category=tissue, segmented_property_type=tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            # The palette's sRGB, converted by highdicom to the CIELab that DICOM stores.
            display_color=hd.color.CIELabColor.from_rgb(*protocols.colour(M, K, m, k))))
    return out


def source_datasets(files: Sequence[str], labels: sitk.Image) -> Tuple[list, List[int]]:
    """(pydicom datasets, slice index in ``labels``) for the source files, matched by position.

    ITK sorts the slices by position, not by file name; each file's ImagePositionPatient
    says which slice of the label volume it is, so the SEG frames go to the right instances."""
    import pydicom

    datasets, slices = [], []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if "ImagePositionPatient" not in ds or "FrameOfReferenceUID" not in ds:
            raise PancakesInputError(f"{f}: no ImagePositionPatient or FrameOfReferenceUID; "
                                     "a DICOM SEG needs a spatially located source series")
        index = labels.TransformPhysicalPointToContinuousIndex([float(v) for v in ds.ImagePositionPatient])
        datasets.append(ds)
        slices.append(int(round(index[2])))
    size = labels.GetSize()
    if sorted(slices) != list(range(size[2])) or any(int(ds.Rows) != size[1] or int(ds.Columns) != size[0]
                                                     for ds in datasets):
        raise PancakesInputError(f"{files[0]}: the series' slices do not match the segmented volume "
                                 "one to one; cannot reference them from a DICOM SEG")
    return datasets, slices


def build_dicom_seg(labels: sitk.Image, files: Sequence[str], M: int, K: int, m: int, algorithm,
                    series_number: int = 0):
    """One protocol's labels (values 1..K on the source series' grid) -> highdicom Segmentation."""
    import highdicom as hd

    datasets, slices = source_datasets(files, labels)
    arr = sitk.GetArrayViewFromImage(labels)
    if int(arr.max(initial=0)) > K:
        raise ValueError(f"label volume holds values above K={K}")
    # Frame i of pixel_array belongs to source_images[i]: reorder the slices to the datasets' order.
    frames = np.ascontiguousarray(arr[slices], dtype=np.uint8 if K < 256 else np.uint16)
    return hd.seg.Segmentation(
        source_images=datasets, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(M, K, m, algorithm),
        series_instance_uid=hd.UID(), series_number=series_number or 900 + m + 1, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="Pancakes",
        software_versions=f"pancakes {__version__}", device_serial_number="none",
        content_label=f"PANCAKES_P{m + 1:02d}", content_description=protocols.protocol_name(M, K, m)[:64],
        series_description=f"Pancakes {protocols.protocol_name(M, K, m)}"[:64], omit_empty_frames=True)


def write_dicom_seg(path: PathLike, labels: sitk.Image, files: Sequence[str], M: int, K: int, m: int,
                    algorithm) -> Path:
    """Build and atomically write one protocol's SEG (see build_dicom_seg)."""
    seg = build_dicom_seg(labels, files, M, K, m, algorithm)
    return atomic_write(path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))
