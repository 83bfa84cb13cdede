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
SOURCE_VOLUME = ATTRIBUTE_PREFIX + "SourceVolumeID"
ROLE_PREVIEW = "preview"
ROLE_KEPT = "kept"


def ensureSegmentationConverters() -> None:
    """Register the segmentation representations once, as Slicer's own module does at startup.

    A bare MRML scene (slicer-core in plain Python) has none, and then
    ``AddEmptySegment`` fails; inside Slicer this is a no-op.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.ConstructRepresentationObjectByRepresentation("Binary labelmap") is not None:
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
        "volumeID": segmentationNode.GetAttribute(SOURCE_VOLUME),
    }


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
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.SetAttribute(SOURCE_VOLUME, volumeNode.GetID())
    return segmentationNode


def placeNextToVolume(node, volumeNode) -> None:
    """Put ``node`` under the same subject hierarchy parent as ``volumeNode`` (its study or patient)."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volumeNode.GetScene())
    if shNode is None:
        return
    volumeItem = shNode.GetItemByDataNode(volumeNode)
    item = shNode.GetItemByDataNode(node)
    if volumeItem and item:
        shNode.SetItemParent(item, shNode.GetItemParent(volumeItem))


def labelmapNodeFromImage(labels: sitk.Image):
    """A labelmap node outside any scene holding ``labels`` with its geometry (for import)."""
    labelmapNode = slicer.vtkMRMLLabelMapVolumeNode()
    updateVolumeNodeFromImage(labelmapNode, labels)
    return labelmapNode


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
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentation.RemoveAllSegments()
        for k, segmentId in enumerate(segmentIds):
            name = names.get(segmentId) or protocols.segment_name(M, K, m, k)
            added = segmentation.AddEmptySegment(segmentId, name, protocols.colour_float(M, K, m, k))
            if added != segmentId:
                raise RuntimeError(f"could not add segment {segmentId} to {segmentationNode.GetName()}")
        ids = _stringArray(segmentIds)
        labelmapNode = labelmapNodeFromImage(labels)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode, ids):
            raise RuntimeError(f"importing labels into {segmentationNode.GetName()} failed")
        segmentationNode.SetAttribute(ROLE, role)
        segmentationNode.SetAttribute(PROTOCOLS, str(M))
        segmentationNode.SetAttribute(LABELS, str(K))
        segmentationNode.SetAttribute(PROTOCOL, str(m + 1))
        segmentationNode.SetAttribute(SOURCE_VOLUME, volumeNode.GetID())
    finally:
        segmentationNode.EndModify(wasModifying)


def _stringArray(values: List[str]):
    array = vtk.vtkStringArray()
    for v in values:
        array.InsertNextValue(v)
    return array
