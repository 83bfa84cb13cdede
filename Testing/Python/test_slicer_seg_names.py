"""Segment names, colours and values read back identically through slicerio and through Slicer.

slicerio decodes .seg.nrrd header lines as ASCII (pynrrd drops other bytes), Slicer as
UTF-8: the 'P03 \u00b7 L07' names of the first release came back from slicerio as 'P03  L07'.
Both directions are checked: files the CLI writes (slicerio) and files Slicer writes.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)

from pancakes import protocols  # noqa: E402
from pancakes.segio import write_seg_nrrd  # noqa: E402

M, K, m = 3, 70, 2  # K past the 64-colour palette


def read_with_slicer(path):
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()  # without it, every segment reads as label value 1
    logic.SetMRMLScene(scene)
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    seg = node.GetSegmentation()
    segments = [seg.GetNthSegment(i) for i in range(seg.GetNumberOfSegments())]
    return [(seg.GetNthSegmentID(i), s.GetName(), tuple(s.GetColor()), s.GetLabelValue()) for i, s in enumerate(segments)]


def expected():
    return [(protocols.segment_id(M, K, m, k), protocols.segment_name(M, K, m, k),
             protocols.colour_float(M, K, m, k), protocols.label_value(M, K, m, k)) for k in range(K)]


def labels_volume():
    arr = (np.arange(6 * 10 * 12).reshape(6, 10, 12) % K + 1).astype(np.uint8)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.7, 2.0))
    return img


def test_cli_files_read_the_same_in_slicerio_and_slicer(tmp_path):
    path = write_seg_nrrd(tmp_path / "s_P03.seg.nrrd", labels_volume(), M, K, m)
    via_slicerio = [(s["id"], s["name"], tuple(s["color"]), s["labelValue"])
                    for s in slicerio.read_segmentation(str(path), skip_voxels=True)["segments"]]
    via_slicer = read_with_slicer(path)
    for got in (via_slicerio, via_slicer):
        assert [g[0] for g in got] == [e[0] for e in expected()]
        assert [g[1] for g in got] == [e[1] for e in expected()]
        assert [g[3] for g in got] == [e[3] for e in expected()]
        np.testing.assert_allclose([g[2] for g in got], [e[2] for e in expected()], atol=1e-5)
    assert len({g[2] for g in via_slicer}) == K  # no colour reused past the palette


def test_files_slicer_writes_read_the_same_in_slicerio(tmp_path):
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    for sid, name, colour, _ in expected()[:5]:
        node.GetSegmentation().AddEmptySegment(sid, name, list(colour))
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "slicer.seg.nrrd"))
    assert storage.WriteData(node)
    segments = slicerio.read_segmentation(str(tmp_path / "slicer.seg.nrrd"), skip_voxels=True)["segments"]
    assert [(s["id"], s["name"]) for s in segments] == [(e[0], e[1]) for e in expected()[:5]]
