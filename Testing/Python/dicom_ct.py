"""A small CT series written with pydicom, with the tags a scanner writes (for DICOM SEG tests).

Shared by the core, CLI and Slicer tests; lives beside conftest.py so every test folder imports it.
Files are written in shuffled name order on purpose: readers must sort by position, not by name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_series(folder, shape=(12, 32, 40), seed=0, spacing=(0.7, 0.8, 2.5), origin=(-10.0, -20.0, 30.0),
                    patient="Test^Pancakes") -> List[Path]:
    """One CT slice file per z (numpy shape (z, rows, columns)), axial, HU in int16. -> file paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    body = rng.integers(-1000, 1500, shape).astype(np.int16)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = rng.permutation(shape[0])
    paths = []
    for z in range(shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"CT{order[z]:04d}"  # no extension, as PACS exports often are
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient, "PANCAKES01", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "CT", "Test", 3, z + 1
        ds.SeriesDescription, ds.ImageType = "Abdomen 2.5mm", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PositionReferenceIndicator, ds.KVP, ds.SliceThickness = "", 120, spacing[2]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + z * spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (y), column spacing (x)
        ds.Rows, ds.Columns = shape[1], shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = body[z].tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def series_files(folder) -> List[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))
