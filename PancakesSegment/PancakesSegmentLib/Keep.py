"""Keeping a protocol: ordinary, editable segmentations next to their volumes.

A kept segmentation is a normal segmentation node (the Segment Editor works on
it as on any other); attributes only remember which (M, K, protocol) it came
from, so that renaming a label renames it in every scan of the collection, and
so that label names survive saving and reloading the scene.

Usage::

    kept = keepProtocol(logic, m=2)                     # one node per finished volume
    renameLabel(scene, M=8, K=20, m=2, k=6, name="hippocampus")  # what logic.renameLabel does
"""
from __future__ import annotations

from typing import Dict, List

from pancakes import protocols

from .Segments import (
    ROLE_KEPT,
    createSegmentationNode,
    fillSegmentation,
    pancakesSegmentationNodes,
    placeNextToVolume,
    segmentationInfo,
)


def keptName(volumeName: str, M: int, K: int, m: int) -> str:
    return f"{volumeName} Pancakes P{m + 1:02d}"


def findKeptNode(scene, volumeID: str, M: int, K: int, m: int):
    """The kept segmentation of one volume for (M, K, m), or None."""
    for node in pancakesSegmentationNodes(scene, ROLE_KEPT):
        info = segmentationInfo(node)
        if (info["volumeID"], info["M"], info["K"], info["m"]) == (volumeID, M, K, m):
            return node
    return None


def labelNames(scene, M: int, K: int, m: int) -> Dict[str, str]:
    """Segment ID -> name the user gave, gathered from the kept segmentations of (M, K, m)."""
    names: Dict[str, str] = {}
    for node in pancakesSegmentationNodes(scene, ROLE_KEPT):
        info = segmentationInfo(node)
        if (info["M"], info["K"], info["m"]) != (M, K, m):
            continue
        segmentation = node.GetSegmentation()
        for k in range(K):
            segmentId = protocols.segment_id(M, K, m, k)
            segment = segmentation.GetSegment(segmentId)
            if segment is not None and segment.GetName() != protocols.segment_name(M, K, m, k):
                names[segmentId] = segment.GetName()
    return names


def keepProtocol(logic, m: int) -> List:
    """Kept segmentations of protocol m (0-based) for every finished volume of ``logic``.

    A volume that already has one keeps it untouched (the user may have edited
    it); the others get a new one, with the label names already given.
    """
    scene = logic.scene
    kept = []
    for result in logic.finishedResults():
        M, K = result.M, result.K
        volumeNode = scene.GetNodeByID(result.volumeID)
        node = findKeptNode(scene, result.volumeID, M, K, m)
        if node is None:
            node = createSegmentationNode(scene, volumeNode, keptName(volumeNode.GetName(), M, K, m))
            fillSegmentation(node, volumeNode, result.labels[m], M, K, m, ROLE_KEPT, logic.labelNamesFor(M, K, m))
            placeNextToVolume(node, volumeNode)
        preview = logic.previewNode(result.volumeID)
        if preview is not None and preview.GetDisplayNode() is not None:
            preview.GetDisplayNode().SetVisibility(False)  # the kept copy shows the same labels
        kept.append(node)
    return kept


def renameLabel(scene, M: int, K: int, m: int, k: int, name: str) -> int:
    """Rename label k of protocol m in every Pancakes segmentation of the scene; returns how many."""
    name = name.strip()
    if not name:
        raise ValueError("a label name cannot be empty")
    segmentId = protocols.segment_id(M, K, m, k)
    renamed = 0
    for node in pancakesSegmentationNodes(scene):
        info = segmentationInfo(node)
        if (info["M"], info["K"], info["m"]) != (M, K, m):
            continue
        segment = node.GetSegmentation().GetSegment(segmentId)
        if segment is not None:
            segment.SetName(name)
            renamed += 1
    return renamed
