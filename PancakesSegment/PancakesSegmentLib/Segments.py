"""Pancakes label volumes -> segmentation nodes whose segments line up across volumes.

Every segment's ID, name, colour and label value comes from pancakes.protocols,
a function of (M, K, m, k) alone, and all K segments are created even when a
label is empty, so segment ``P03_L07`` is the same structure in every volume.

Usage::

    segmentationNode = createSegmentationNode(scene, volumeNode, "CT Pancakes P03")
    fillSegmentation(segmentationNode, volumeNode, labels, M=8, K=20, m=2)
"""
from __future__ import annotations

from typing import Dict, List, Optional

import slicer
import SimpleITK as sitk
import vtk

from pancakes import protocols

from .VolumeConversion import updateVolumeNodeFromImage

ATTRIBUTE_PREFIX = "PancakesSegment."
ROLE = ATTRIBUTE_PREFIX + "Role"  # "preview" (refilled when browsing) or "kept" (the user's own)
PROTOCOLS = ATTRIBUTE_PREFIX + "Protocols"  # M
LABELS = ATTRIBUTE_PREFIX + "Labels"  # K
PROTOCOL = ATTRIBUTE_PREFIX + "Protocol"  # m, 1-based as users see it
# The source volume is a node reference (MRML renames clashing IDs on scene import in
# references only); the attribute of earlier versions is still read when there is no reference.
SOURCE_VOLUME_REFERENCE = ATTRIBUTE_PREFIX + "SourceVolume"
SOURCE_VOLUME = ATTRIBUTE_PREFIX + "SourceVolumeID"
ROLE_PREVIEW = "preview"
ROLE_KEPT = "kept"
BINARY_LABELMAP = "Binary labelmap"


def ensureSegmentationConverters() -> None:
    """Register the segmentation representations once, as Slicer's own module does at startup.

    A bare MRML scene (slicer-core in plain Python) has none, and then
    ``AddEmptySegment`` fails; inside Slicer this is a no-op.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.ConstructRepresentationObjectByRepresentation(BINARY_LABELMAP) is not None:
        return
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)  # registers the converter rules in the global factory


def protocolSegmentIds(M: int, K: int, m: int) -> List[str]:
    """Segment IDs of protocol m, in label-value order (value k+1 -> element k)."""
    return [protocols.segment_id(M, K, m, k) for k in range(K)]


def segmentationInfo(segmentationNode) -> Optional[Dict[str, object]]:
    """Role, M, K, m (0-based) and source volume ID of a Pancakes segmentation; None for others."""
    role = segmentationNode.GetAttribute(ROLE)
    if not role:
        return None
    return {
        "role": role,
        "M": int(segmentationNode.GetAttribute(PROTOCOLS)),
        "K": int(segmentationNode.GetAttribute(LABELS)),
        "m": int(segmentationNode.GetAttribute(PROTOCOL)) - 1,
        "volumeID": sourceVolumeID(segmentationNode),
    }


def sourceVolumeID(segmentationNode) -> Optional[str]:
    """ID of the volume a Pancakes segmentation was made from (None if unknown)."""
    return segmentationNode.GetNodeReferenceID(SOURCE_VOLUME_REFERENCE) or segmentationNode.GetAttribute(SOURCE_VOLUME)


def sourceVolumeNode(segmentationNode):
    """The volume node a Pancakes segmentation was made from, or None."""
    volumeID = sourceVolumeID(segmentationNode)
    scene = segmentationNode.GetScene()
    return scene.GetNodeByID(volumeID) if volumeID and scene is not None else None


def pancakesSegmentationNodes(scene, role: Optional[str] = None) -> list:
    """Segmentation nodes of the scene that this module made (optionally of one role)."""
    nodes = []
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
        info = segmentationInfo(node)
        if info is not None and (role is None or info["role"] == role):
            nodes.append(node)
    return nodes


def createSegmentationNode(scene, volumeNode, name: str):
    """A new segmentation node in ``scene`` with display nodes and the volume's geometry."""
    ensureSegmentationConverters()
    segmentationNode = slicer.vtkMRMLSegmentationNode()
    segmentationNode.SetName(scene.GenerateUniqueName(name))
    scene.AddNode(segmentationNode)
    segmentationNode.CreateDefaultDisplayNodes()
    followVolume(segmentationNode, volumeNode)
    return segmentationNode


def followVolume(segmentationNode, volumeNode) -> None:
    """Put ``segmentationNode`` under the volume's parent transform, on the volume's lattice.

    The labels are on the volume's local lattice, so with the same parent transform they
    land on the volume in world space, and so do later Segment Editor edits.
    """
    segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.SetNodeReferenceID(SOURCE_VOLUME_REFERENCE, volumeNode.GetID())
    segmentationNode.RemoveAttribute(SOURCE_VOLUME)


def placeNextToVolume(node, volumeNode) -> None:
    """Put ``node`` under the same subject hierarchy parent as ``volumeNode`` (its study or patient)."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volumeNode.GetScene())
    if shNode is None:
        return
    volumeItem = shNode.GetItemByDataNode(volumeNode)
    item = shNode.GetItemByDataNode(node)
    if volumeItem and item:
        shNode.SetItemParent(item, shNode.GetItemParent(volumeItem))


def orientedImageFromLabels(labels: sitk.Image):
    """``labels`` as a vtkOrientedImageData with the image's own (volume-local) geometry."""
    labelmapNode = slicer.vtkMRMLLabelMapVolumeNode()  # outside any scene: only converts the geometry
    updateVolumeNodeFromImage(labelmapNode, labels)
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(labelmapNode.GetImageData())
    ijkToRas = vtk.vtkMatrix4x4()
    labelmapNode.GetIJKToRASMatrix(ijkToRas)
    image.SetImageToWorldMatrix(ijkToRas)
    return image


def fillSegmentation(segmentationNode, volumeNode, labels: sitk.Image, M: int, K: int, m: int,
                     role: str = ROLE_PREVIEW, names: Optional[Dict[str, str]] = None) -> None:
    """Replace all segments with the K labels of protocol m (empty ones included).

    ``names`` maps segment IDs to names the user gave; others get the default name.
    """
    ensureSegmentationConverters()
    segmentIds = protocolSegmentIds(M, K, m)
    names = names or {}
    segmentation = segmentationNode.GetSegmentation()
    wasModifying = segmentationNode.StartModify()
    try:
        followVolume(segmentationNode, volumeNode)
        segmentation.RemoveAllSegments()
        # One labelmap shared by the K segments, label value k+1 for segment k, set directly in
        # the segmentation's own frame: importing a labelmap node would resample it whenever its
        # parent transform (none, outside the scene) differs from the segmentation's.
        shared = orientedImageFromLabels(labels)
        for k, segmentId in enumerate(segmentIds):
            segment = slicer.vtkSegment()
            segment.SetName(names.get(segmentId) or protocols.segment_name(M, K, m, k))
            segment.SetColor(protocols.colour_float(M, K, m, k))
            segment.SetLabelValue(protocols.label_value(M, K, m, k))
            segment.AddRepresentation(BINARY_LABELMAP, shared)
            if not segmentation.AddSegment(segment, segmentId):
                raise RuntimeError(f"could not add segment {segmentId} to {segmentationNode.GetName()}")
        segmentationNode.SetAttribute(ROLE, role)
        segmentationNode.SetAttribute(PROTOCOLS, str(M))
        segmentationNode.SetAttribute(LABELS, str(K))
        segmentationNode.SetAttribute(PROTOCOL, str(m + 1))
    finally:
        segmentationNode.EndModify(wasModifying)

