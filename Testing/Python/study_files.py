"""Writing small study files for tests: a random volume, and a volume as a DICOM series.

Shared by the core (inputs) and CLI tests; lives beside conftest.py, so every test folder can import it."""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk


def write_volume(path, shape=(20, 32, 32), seed=0, spacing=(0.8, 0.9, 2.5), origin=(10.0, -5.0, 3.0),
                 direction=(1, 0, 0, 0, -1, 0, 0, 0, 1)):
    """A small random int16 volume; shape is numpy (k, j, i)."""
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.integers(0, 1000, shape).astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return img


def write_dicom_series(folder, image, series_uid, description="T1", number=1):
    """Write a 3D image as one DICOM file per slice (identity direction, as scanners write axial)."""
    os.makedirs(folder, exist_ok=True)
    arr = sitk.GetArrayFromImage(image)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")  # the files have no extension to pick the format from
    for z in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[z])
        sl.SetSpacing(image.GetSpacing()[:2])
        pos = image.TransformIndexToPhysicalPoint((0, 0, z))
        tags = {
            "0008|0060": "MR", "0010|0010": "Test^Subject", "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid, "0020|0011": str(number), "0008|103e": description,
            "0020|0013": str(z + 1), "0020|0032": "\\".join(f"{p:.6f}" for p in pos),
            "0020|0037": "1\\0\\0\\0\\1\\0", "0018|0050": str(image.GetSpacing()[2]),
            "0028|0030": f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}",
        }
        for k, v in tags.items():
            sl.SetMetaData(k, v)
        writer.SetFileName(os.path.join(folder, f"IM{z:04d}"))  # no extension, as PACS exports often are
        writer.Execute(sl)
