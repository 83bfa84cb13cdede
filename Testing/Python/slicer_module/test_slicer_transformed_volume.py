"""Segmentations of a volume under a linear transform sit on that volume's lattice in world space
(issue 17, defect 1), and a kept segmentation finds its volume by node reference (defect 9)."""
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

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.SelfTest import addVolume, rotatedDirection, syntheticImage  # noqa: E402
from PancakesSegmentLib.Segments import createSegmentationNode, fillSegmentation, protocolSegmentIds  # noqa: E402

M, K, m = 4, 6, 1
SHIFT = (60.0, -35.0, 20.0)


def translated(scene, volumeNode, shift=SHIFT):
    matrix = vtk.vtkMatrix4x4()
    for axis, value in enumerate(shift):
        matrix.SetElement(axis, 3, value)
    transformNode = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transformNode)
    transformNode.SetMatrixTransformToParent(matrix)
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    return transformNode


def labelsOf(image: sitk.Image) -> sitk.Image:
    """Labels 1..K in bands along i, with the volume's geometry."""
    voxels = sitk.GetArrayFromImage(image)
    labels = (np.arange(voxels.shape[2]) * K // voxels.shape[2] + 1).astype(np.uint8)
    out = sitk.GetImageFromArray(np.broadcast_to(labels, voxels.shape).copy())
    out.CopyInformation(image)
    return out


def worldToVolumeIjk(volumeNode) -> vtk.vtkGeneralTransform:
    """World (RAS) -> the volume's IJK, through its parent transforms."""
    rasToIjk = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIjk)
    worldToLocal = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), worldToLocal)
    transform = vtk.vtkGeneralTransform()
    transform.Concatenate(rasToIjk)
    transform.Concatenate(worldToLocal)
    return transform


def segmentVoxelsInWorld(segmentationNode, segmentId):
    """(k, j, i) voxels of one segment and the world position of each."""
    image = slicer.vtkOrientedImageData()
    segmentationNode.GetBinaryLabelmapRepresentation(segmentId, image)
    from vtk.util import numpy_support

    dims = image.GetDimensions()
    mask = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]) > 0
    extent = image.GetExtent()
    ijkToLocal = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(ijkToLocal)
    localToWorld = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(segmentationNode.GetParentTransformNode(), None, localToWorld)
    k, j, i = np.nonzero(mask)
    ijk = np.stack([i + extent[0], j + extent[2], k + extent[4]], 1)
    world = []
    for point in ijk[:50]:
        local = ijkToLocal.MultiplyPoint(list(map(float, point)) + [1.0])[:3]
        world.append(localToWorld.TransformPoint(local))
    return ijk[:50], np.array(world)


@pytest.mark.parametrize("direction", [None, rotatedDirection(30.0)], ids=["axes", "rotated"])
def test_segment_voxels_land_on_the_transformed_volume_lattice(direction):
    scene = slicer.vtkMRMLScene()
    image = syntheticImage((5, 16, 18), (0.8, 0.9, 2.0), direction=direction, origin=(3.0, -4.0, 7.0))
    volumeNode = addVolume(scene, "A", image)
    translated(scene, volumeNode)
    segmentationNode = createSegmentationNode(scene, volumeNode, "A Pancakes")
    labels = labelsOf(image)
    fillSegmentation(segmentationNode, volumeNode, labels, M, K, m)

    assert segmentationNode.GetTransformNodeID() == volumeNode.GetTransformNodeID()
    toIjk = worldToVolumeIjk(volumeNode)
    expected = sitk.GetArrayFromImage(labels)
    for k, segmentId in enumerate(protocolSegmentIds(M, K, m)):
        _ijk, world = segmentVoxelsInWorld(segmentationNode, segmentId)
        assert len(world), segmentId
        volumeIjk = np.array([toIjk.TransformPoint(p) for p in world])
        assert np.allclose(volumeIjk, np.round(volumeIjk), atol=1e-3), f"{segmentId} off the lattice: {volumeIjk[0]}"
        index = np.round(volumeIjk).astype(int)
        assert (expected[index[:, 2], index[:, 1], index[:, 0]] == k + 1).all(), segmentId


def test_a_later_fill_follows_a_transform_set_after_creation():
    scene = slicer.vtkMRMLScene()
    image = syntheticImage((4, 12, 12))
    volumeNode = addVolume(scene, "A", image)
    segmentationNode = createSegmentationNode(scene, volumeNode, "A Pancakes")
    fillSegmentation(segmentationNode, volumeNode, labelsOf(image), M, K, m)
    translated(scene, volumeNode)
    fillSegmentation(segmentationNode, volumeNode, labelsOf(image), M, K, m)
    assert segmentationNode.GetTransformNodeID() == volumeNode.GetTransformNodeID()
    _ijk, world = segmentVoxelsInWorld(segmentationNode, protocolSegmentIds(M, K, m)[0])
    volumeIjk = np.array([worldToVolumeIjk(volumeNode).TransformPoint(p) for p in world])
    assert np.allclose(volumeIjk, np.round(volumeIjk), atol=1e-3)


def sceneXml(scene) -> str:
    scene.SetSaveToXMLString(1)
    scene.Commit()
    return scene.GetSceneXMLString()


def test_kept_segmentation_finds_its_volume_after_import_into_a_non_empty_scene():
    """MRML renames clashing node IDs on import only in node references, not in attributes."""
    from PancakesSegmentLib.Keep import findKeptNode
    from PancakesSegmentLib.Segments import ROLE_KEPT, segmentationInfo, sourceVolumeNode

    source = slicer.vtkMRMLScene()
    image = syntheticImage((4, 12, 12))
    volumeNode = addVolume(source, "Imported", image)
    segmentationNode = createSegmentationNode(source, volumeNode, "Imported Pancakes P02")
    fillSegmentation(segmentationNode, volumeNode, labelsOf(image), M, K, m, ROLE_KEPT)

    target = slicer.vtkMRMLScene()
    already = addVolume(target, "Already here", syntheticImage((4, 12, 12), seed=3))
    assert already.GetID() == volumeNode.GetID()  # the IDs clash
    target.SetLoadFromXMLString(1)
    target.SetSceneXMLString(sceneXml(source))
    target.Import()

    imported = next(n for n in (target.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                                for i in range(target.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")))
                    if n.GetName() == "Imported")
    kept = next(n for n in (target.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                            for i in range(target.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))))
    assert imported.GetID() != already.GetID()
    assert segmentationInfo(kept)["volumeID"] == imported.GetID()
    assert sourceVolumeNode(kept) is imported
    assert findKeptNode(target, imported.GetID(), M, K, m) is kept
    assert findKeptNode(target, already.GetID(), M, K, m) is None
