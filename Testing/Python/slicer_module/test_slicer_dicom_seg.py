"""The panel's Export as DICOM SEG on a real MRML scene (slicer-core): only volumes loaded from DICOM."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)
hd = pytest.importorskip("highdicom")
import SimpleITK as sitk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from dicom_ct import write_ct_series  # noqa: E402
from PancakesSegmentLib.Browse import segmentVoxelCounts  # noqa: E402
from PancakesSegmentLib.ExportDicom import (  # noqa: E402
    INSTANCE_UIDS,
    dicomSourceFiles,
    dicomVolumesOfProtocol,
    exportProtocolDicomSeg,
    volumesFromDicom,
)
from PancakesSegmentLib.Keep import findKeptNode  # noqa: E402
from PancakesSegmentLib.Parameters import RunSettings  # noqa: E402
from PancakesSegmentLib.SegmentationLogic import SegmentationLogic  # noqa: E402
from PancakesSegmentLib.Segments import protocolSegmentIds  # noqa: E402
from PancakesSegmentLib.SelfTest import IntensityBinsModel, addVolume, syntheticImage  # noqa: E402

M, K = 3, 5


def _load_like_slicer(scene, folder):
    """What Slicer's DICOM plugin leaves: the volume, and its slices' instance UIDs as an attribute."""
    files = write_ct_series(folder, shape=(7, 24, 30))
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    node = addVolume(scene, "CT abdomen", reader.Execute())
    uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: str(f) for f in files}
    node.SetAttribute(INSTANCE_UIDS, " ".join(uids))
    return node, uids


def test_export_writes_seg_for_dicom_volumes_only(tmp_path, random_model):
    scene = slicer.vtkMRMLScene()
    ct, uids = _load_like_slicer(scene, tmp_path / "ct")
    plain = addVolume(scene, "plain", syntheticImage(seed=3))
    lookup = uids.get
    assert volumesFromDicom([ct, plain], lookup) == [ct] and dicomSourceFiles(plain, lookup) is None
    logic = SegmentationLogic(scene)
    logic.setModel(IntensityBinsModel(random_model))
    logic.run([ct, plain], RunSettings(M, K, "cpu"))
    assert dicomVolumesOfProtocol(logic, 1, lookup) == [ct]
    report = exportProtocolDicomSeg(logic, 1, tmp_path / "out", lookup)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in report.files] == ["CT abdomen/CT abdomen_P02.seg.dcm"]
    seg = hd.seg.segread(report.files[0])
    source = pydicom.dcmread(next(iter(uids.values())), stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == set(uids)
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [f"P02 L{k + 1:02d}" for k in range(K)]
    # The voxels of each segment are the kept segmentation's.
    counts = segmentVoxelCounts(findKeptNode(scene, ct.GetID(), M, K, 1))
    array = seg.get_volume(combine_segments=True, relabel=False).array
    assert list(np.bincount(array.ravel(), minlength=K + 1)[1:]) == [counts[i] for i in protocolSegmentIds(M, K, 1)]
