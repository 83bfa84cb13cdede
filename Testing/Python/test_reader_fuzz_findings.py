"""The defects the reader fuzzer (reader_fuzz.py) found, each pinned by the smallest file that shows it."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from test_geometry_checks import write_nrrd

from pancakes.errors import PancakesInputError
from pancakes.geometry_checks import geometry_reason
from pancakes.io import Subject, load_subject, read_image


def read(path):
    return read_image(Subject("x", str(path), [str(path)]))


def test_a_header_claiming_gigabytes_over_a_few_bytes_is_refused_before_reading(tmp_path):
    """sizes: 6 32767 32767 over 240 bytes: ITK allocated and filled 12.9 GB before failing."""
    path = tmp_path / "huge.nrrd"
    write_nrrd(path, "")
    path.write_bytes(path.read_bytes().replace(b"sizes: 6 5 4", b"sizes: 6 32767 32767"))
    with pytest.raises(PancakesInputError, match=r"header describes 6x32767x32767 voxels \(12.9 GB\), more than"):
        read(path)


def test_a_compressed_file_may_claim_what_its_codec_can_expand_to(tmp_path):
    """A constant volume compresses ~1000:1 under gzip: such a file is fine, not a lying header."""
    image = sitk.Image(512, 512, 200, sitk.sitkInt16)  # 105 MB of zeros in a ~100 kB file
    image.SetPixel(3, 3, 3, 1)
    sitk.WriteImage(image, str(tmp_path / "flat.nrrd"), True)
    assert read(tmp_path / "flat.nrrd").GetSize() == (512, 512, 200)


def test_direction_columns_that_are_not_unit_vectors_are_refused(tmp_path):
    """A MetaImage TransformMatrix with 1e30 entries sent two image axes to one patient axis on
    reorientation ('re-orientation changed the volume size; this is a bug')."""
    image = sitk.GetImageFromArray(np.arange(24 * 20 * 6, dtype=np.int16).reshape(6, 20, 24))
    path = tmp_path / "skew.mha"
    sitk.WriteImage(image, str(path))
    text = path.read_bytes().replace(b"TransformMatrix = 1 0 0 0 1 0 0 0 1",
                                     b"TransformMatrix = -1 1e30 1 1 1 0 -1 1e30 nan")
    path.write_bytes(text)
    with pytest.raises(PancakesInputError, match="direction matrix columns are not unit vectors"):
        load_subject(Subject("x", str(path), [str(path)]))


def test_two_image_axes_along_one_patient_axis_are_refused_but_a_gantry_tilt_is_not():
    image = sitk.Image(4, 4, 4, sitk.sitkInt16)
    a, b = np.radians(30), np.radians(40)  # image y and z both closer to patient y than to anything else
    image.SetDirection((1, 0, 0, 0, np.cos(a), np.cos(b), 0, np.sin(a), np.sin(b)))  # row-major: columns = axes
    assert "same patient axis" in geometry_reason(image)
    tilt = np.radians(20)  # a sheared grid: unit columns, y and z still distinct
    image.SetDirection((1, 0, 0, 0, 1, np.sin(tilt), 0, 0, np.cos(tilt)))
    assert geometry_reason(image) is None


def _dicom_file(tmp_path):
    image = sitk.GetImageFromArray(np.arange(20 * 24, dtype=np.int16).reshape(20, 24))
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(tmp_path / "ok.dcm"))
    writer.Execute(image)
    return (tmp_path / "ok.dcm").read_bytes()


def test_a_corrupt_dicom_is_refused_before_gdcm_reads_it_into_gigabytes(tmp_path):
    """One flipped bit in the first file-meta tag took ReadImage to 2.9 GB of RSS on a 2 kB file."""
    data = _dicom_file(tmp_path)
    assert read(tmp_path / "ok.dcm").GetSize()[:2] == (24, 20)
    flipped = bytearray(data)
    flipped[132] ^= 0x10  # (0002,0000) -> (0012,0000)
    (tmp_path / "meta.dcm").write_bytes(bytes(flipped))
    with pytest.raises(PancakesInputError, match="file meta information does not follow"):
        read(tmp_path / "meta.dcm")
    (tmp_path / "short.dcm").write_bytes(data[:-100])  # pixel data claims more than is left
    with pytest.raises(PancakesInputError, match=r"element \(7FE0,0010\) claims 960 bytes; the file has 860 left"):
        read(tmp_path / "short.dcm")
