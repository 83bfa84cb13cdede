"""MRML volume node <-> SimpleITK geometry, checked against Slicer's own file writer and reader."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)
import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.Collection import loadVolumeFile  # noqa: E402
from PancakesSegmentLib.SelfTest import rotatedDirection  # noqa: E402
from PancakesSegmentLib.VolumeConversion import (  # noqa: E402
    ijkToRasMatrix,
    imageFromVolumeNode,
    updateVolumeNodeFromImage,
)
from pancakes.errors import PancakesInputError  # noqa: E402


def rotatedNode(scene):
    """A 5x7x4 (i, j, k) volume rotated about two axes with spacing (0.7, 1.3, 3.1), built the MRML way."""
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("rotated")
    scene.AddNode(node)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(5, 7, 4)
    imageData.AllocateScalars(vtk.VTK_SHORT, 1)
    values = numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars())
    values[:] = np.arange(values.size)  # voxel (i, j, k) holds i + 5 j + 35 k
    node.SetAndObserveImageData(imageData)
    a, b = np.deg2rad(25), np.deg2rad(-40)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    directions = rz @ rx
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, directions[r, c])
    node.SetIJKToRASDirectionMatrix(m)
    node.SetSpacing(0.7, 1.3, 3.1)
    node.SetOrigin(12.5, -40.0, 7.25)
    return node


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def test_voxels_keep_their_ijk_index(scene):
    image = imageFromVolumeNode(rotatedNode(scene))
    assert image.GetSize() == (5, 7, 4)
    for i, j, k in [(0, 0, 0), (4, 0, 0), (0, 6, 0), (0, 0, 3), (3, 5, 2)]:
        assert image[i, j, k] == i + 5 * j + 35 * k


def test_every_voxel_lands_on_the_same_physical_point(scene):
    node = rotatedNode(scene)
    image = imageFromVolumeNode(node)
    ijkToRas = ijkToRasMatrix(node)
    for ijk in [(0, 0, 0), (4, 0, 0), (0, 6, 0), (0, 0, 3), (4, 6, 3)]:
        ras = (ijkToRas @ np.array(list(ijk) + [1.0]))[:3]
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-6)


def test_geometry_agrees_with_slicers_own_nrrd_writer(scene, tmp_path):
    node = rotatedNode(scene)
    path = tmp_path / "rotated.nrrd"
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    written = sitk.ReadImage(str(path))
    ours = imageFromVolumeNode(node)
    np.testing.assert_allclose(ours.GetSpacing(), written.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(ours.GetOrigin(), written.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(ours.GetDirection(), written.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(written))


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_file_loaded_by_slicer_converts_back_to_the_file_geometry(scene, tmp_path, suffix):
    # A left-handed direction: Slicer's reader may reorder voxels (NIfTI's qfac),
    # so compare in physical space, by resampling onto the file's grid.
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(4, 6, 9)).astype(np.float32))
    image.SetSpacing((0.6, 1.7, 2.9))
    image.SetOrigin((-3.0, 8.0, 21.0))
    image.SetDirection(rotatedDirection(35))
    path = tmp_path / f"vol{suffix}"
    sitk.WriteImage(image, str(path))
    back = imageFromVolumeNode(loadVolumeFile(scene, path))
    np.testing.assert_allclose(sorted(back.GetSpacing()), sorted(image.GetSpacing()), atol=1e-5)
    onto = sitk.Resample(back, image, sitk.Transform(), sitk.sitkNearestNeighbor, np.nan)
    np.testing.assert_allclose(sitk.GetArrayFromImage(onto), sitk.GetArrayFromImage(image), atol=1e-6)


def test_image_to_node_round_trip(scene):
    node = rotatedNode(scene)
    image = imageFromVolumeNode(node)
    copy = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(copy)
    updateVolumeNodeFromImage(copy, image)
    np.testing.assert_allclose(ijkToRasMatrix(copy), ijkToRasMatrix(node), atol=1e-9)
    again = imageFromVolumeNode(copy)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(image))


def test_vector_volume_becomes_a_vector_image(scene):
    node = slicer.vtkMRMLVectorVolumeNode()
    scene.AddNode(node)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(4, 5, 6)
    imageData.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    node.SetAndObserveImageData(imageData)
    image = imageFromVolumeNode(node)
    assert image.GetNumberOfComponentsPerPixel() == 3 and image.GetSize() == (4, 5, 6)


def test_node_without_voxels_is_refused(scene):
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("nothing")
    scene.AddNode(node)
    with pytest.raises(PancakesInputError, match="nothing: volume has no image data"):
        imageFromVolumeNode(node)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(0, 0, 0)
    node.SetAndObserveImageData(imageData)
    with pytest.raises(PancakesInputError, match="nothing"):
        imageFromVolumeNode(node)
