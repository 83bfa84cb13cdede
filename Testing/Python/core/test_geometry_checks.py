"""Voxel geometry ITK reads wrongly (NRRD spacing it replaces by 1 mm) or that no scanner writes."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.errors import PancakesInputError
from pancakes.geometry_checks import geometry_reason
from pancakes.inputs import Subject, read_image

SIZES = (6, 5, 4)


def write_nrrd(path, fields: str) -> None:
    """A raw int16 NRRD with the given header fields (one per line)."""
    data = np.arange(np.prod(SIZES), dtype="<i2").tobytes()
    header = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 6 5 4\nencoding: raw\nendian: little\n"
              + fields + "\n\n")
    path.write_bytes(header.encode() + data)


LPS = "space: left-posterior-superior\nspace origin: (0,0,0)\n"


@pytest.mark.parametrize("fields, words", [
    (LPS + "space directions: (1e308,0,0) (0,1e308,0) (0,0,1e308)", "along axis 0 is inf, not a usable number"),
    ("spacings: nan 1 1", "along axis 0 is nan, not a usable number"),
    ("spacings: 2 1 1e308", "spacing 1e+308 mm along axis 2 is implausible"),
])
def test_nrrd_spacing_that_itk_replaces_or_cannot_use_is_refused(tmp_path, fields, words):
    # Before: the first two were read as 1 mm without a word (volumes in the wrong unit),
    # the third failed deep in the batch with "cannot convert float NaN to integer".
    path = tmp_path / "scan.nrrd"
    write_nrrd(path, fields)
    with pytest.raises(PancakesInputError) as err:
        read_image(Subject("scan", str(path), [str(path)]))
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("fields, spacing", [
    (LPS + "space directions: (0,0.5,0) (-0.7,0,0) (0,0,3)", (0.5, 0.7, 3.0)),
    ("spacings: 0.25 0.25 1.5", (0.25, 0.25, 1.5)),
    ("spacings: -2 1 1", (2.0, 1.0, 1.0)),  # ITK flips the direction instead
    ("", (1.0, 1.0, 1.0)),  # no spacing stated: 1 mm is the format's default, not a substitution
])
def test_valid_nrrd_geometry_reads_as_its_header_says(tmp_path, fields, spacing):
    path = tmp_path / "scan.nrrd"
    write_nrrd(path, fields)
    image = read_image(Subject("scan", str(path), [str(path)]))
    assert image.GetSpacing() == pytest.approx(spacing)


def test_geometry_reason_names_each_kind_of_impossible_geometry():
    image = sitk.Image(4, 4, 4, sitk.sitkInt16)
    assert geometry_reason(image) is None
    image.SetSpacing((1.0, 2e5, 1.0))
    assert "along axis 1 is implausible" in geometry_reason(image)
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetOrigin((0.0, float("inf"), 0.0))
    assert "origin" in geometry_reason(image)
