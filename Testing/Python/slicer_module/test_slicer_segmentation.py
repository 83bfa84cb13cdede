"""PancakesSegmentLib on a real MRML scene (slicer-core): run, align, browse, keep, export, failures."""
from __future__ import annotations

import csv
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
import pancakes.predictor  # noqa: E402
from pancakes import protocols  # noqa: E402
from pancakes.render import protocol_thumbnails  # noqa: E402
from PancakesSegmentLib.Browse import (  # noqa: E402
    segmentationVolumeRows,
    segmentVoxelCounts,
    volumeTable,
)
from PancakesSegmentLib.Collection import loadVolumeFolder, scalarVolumeNodes  # noqa: E402
from PancakesSegmentLib.Export import exportProtocol, writeSegmentation  # noqa: E402
from PancakesSegmentLib.Keep import findKeptNode, keepProtocol  # noqa: E402
from PancakesSegmentLib.Parameters import RunSettings  # noqa: E402
from PancakesSegmentLib.SegmentationLogic import SegmentationLogic, isOutOfMemory  # noqa: E402
from PancakesSegmentLib.Segments import protocolSegmentIds  # noqa: E402
from PancakesSegmentLib.SelfTest import (  # noqa: E402
    IntensityBinsModel,
    addVolume,
    checkAligned,
    rotatedDirection,
    syntheticImage,
)
from PancakesSegmentLib.VolumeConversion import ijkToRasMatrix  # noqa: E402
from pancakes.errors import PancakesInputError  # noqa: E402

M, K = 4, 6
SETTINGS = RunSettings(M, K, "cpu")


@pytest.fixture
def model(random_model):
    return IntensityBinsModel(random_model)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def volumes(scene):
    return [
        addVolume(scene, "A", syntheticImage(seed=1)),
        addVolume(scene, "B", syntheticImage((5, 20, 28), (0.8, 0.8, 2.5), seed=2)),
        addVolume(scene, "C", syntheticImage((6, 24, 24), (1.2, 0.7, 3.0), rotatedDirection(), (5, -3, 7), seed=3)),
    ]


@pytest.fixture
def logic(scene, model):
    logic = SegmentationLogic(scene)
    logic.setModel(model)
    return logic


@pytest.fixture
def encodeCalls(monkeypatch):
    """Names of volumes that went through the UNet."""
    calls = []
    real = pancakes.predictor.Predictor.encode

    def spy(self, progress=None, cancel=None):
        if not self.encoded:
            calls.append(self.name)
        return real(self, progress, cancel)

    monkeypatch.setattr(pancakes.predictor.Predictor, "encode", spy)
    return calls


def segmentIds(node):
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def test_three_volumes_get_aligned_segments_with_empty_labels_present(logic, volumes):
    report = logic.run(volumes, SETTINGS)
    assert report.finished == [v.GetID() for v in volumes] and not report.errors and not report.cancelled
    for m in range(M):
        logic.setCurrentProtocol(m)
        checkAligned(logic, M, K, m)  # IDs, names, colours, label values, voxel counts
        for volume in volumes:
            counts = segmentVoxelCounts(logic.previewNode(volume.GetID()))
            assert len(counts) == K
            # protocol m uses m + 2 intensity bins, so the other labels are empty segments
            assert sum(1 for n in counts.values() if n == 0) == K - min(K, m + 2)
    names = {tuple(s.GetName() for s in map(logic.previewNode(v.GetID()).GetSegmentation().GetSegment,
                                              protocolSegmentIds(M, K, M - 1))) for v in volumes}
    assert names == {tuple(protocols.segment_name(M, K, M - 1, k) for k in range(K))}


def test_segments_sit_on_the_voxels_of_a_rotated_anisotropic_volume(scene, logic, volumes):
    logic.run(volumes, SETTINGS)
    logic.setCurrentProtocol(3)
    rotated = volumes[2]
    segmentationNode = logic.previewNode(rotated.GetID())
    labelmapNode = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmapNode)
    ids = vtk.vtkStringArray()
    for segmentId in protocolSegmentIds(M, K, 3):
        ids.InsertNextValue(segmentId)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentationNode, ids, labelmapNode, rotated)
    np.testing.assert_allclose(ijkToRasMatrix(labelmapNode), ijkToRasMatrix(rotated), atol=1e-6)
    from vtk.util import numpy_support

    dims = labelmapNode.GetImageData().GetDimensions()
    exported = numpy_support.vtk_to_numpy(labelmapNode.GetImageData().GetPointData().GetScalars()).reshape(dims[::-1])
    expected = sitk.GetArrayFromImage(logic.labels(rotated.GetID(), 3))
    assert len(np.unique(expected)) == 5  # structured labels, so a flip or shift would show
    np.testing.assert_array_equal(exported, expected)


def test_seg_nrrd_reloads_unchanged_into_a_fresh_scene(logic, volumes, tmp_path):
    logic.run(volumes, SETTINGS)
    logic.setCurrentProtocol(2)
    for volume in volumes:
        node = logic.previewNode(volume.GetID())
        path = writeSegmentation(node, tmp_path / f"{volume.GetName()}.seg.nrrd")
        fresh = slicer.vtkMRMLScene()
        reloaded = slicer.vtkMRMLSegmentationNode()
        fresh.AddNode(reloaded)
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(path))
        assert storage.ReadData(reloaded)
        assert segmentIds(reloaded) == segmentIds(node) == protocolSegmentIds(M, K, 2)
        for segmentId in segmentIds(node):
            a, b = node.GetSegmentation().GetSegment(segmentId), reloaded.GetSegmentation().GetSegment(segmentId)
            assert (a.GetName(), a.GetLabelValue()) == (b.GetName(), b.GetLabelValue())
            np.testing.assert_allclose(a.GetColor(), b.GetColor(), atol=1e-6)
        assert segmentVoxelCounts(reloaded) == segmentVoxelCounts(node)


def test_keep_rename_and_export(scene, logic, volumes, tmp_path):
    logic.run(volumes, SETTINGS)
    kept = keepProtocol(logic, 1)
    assert [n.GetName() for n in kept] == ["A Pancakes P02", "B Pancakes P02", "C Pancakes P02"]
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for node, volume in zip(kept, volumes):
        assert shNode.GetItemParent(shNode.GetItemByDataNode(node)) == shNode.GetItemParent(shNode.GetItemByDataNode(volume))
        assert not logic.previewNode(volume.GetID()).GetDisplayNode().GetVisibility()
    # Renaming once renames the label in every scan, and in scans kept later.
    assert logic.renameLabel(1, 0, "background") == 3  # the kept three; the previews show another protocol
    assert {n.GetSegmentation().GetSegment("P02_L01").GetName() for n in kept} == {"background"}
    late = addVolume(scene, "D", syntheticImage(seed=4))
    logic.run([late], SETTINGS)
    keptAgain = keepProtocol(logic, 1)
    assert keptAgain[:3] == kept  # existing kept segmentations are left as they are
    assert keptAgain[3].GetSegmentation().GetSegment("P02_L01").GetName() == "background"

    report = exportProtocol(logic, 1, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in report.files] == [
        "A/A_P02.seg.nrrd", "B/B_P02.seg.nrrd", "C/C_P02.seg.nrrd", "D/D_P02.seg.nrrd"]
    with open(report.volumesCsv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["subject", "protocol", "label", "segment_id", "voxel_count", "volume_mm3"]
    assert len(rows) == 4 * K
    for volume in volumes + [late]:
        mine = [r for r in rows if r["subject"] == volume.GetName()]
        assert [r["segment_id"] for r in mine] == protocolSegmentIds(M, K, 1)
        dims = volume.GetImageData().GetDimensions()
        assert sum(int(r["voxel_count"]) for r in mine) == dims[0] * dims[1] * dims[2]
        voxelMm3 = float(np.prod(volume.GetSpacing()))
        for r in mine:
            assert float(r["volume_mm3"]) == pytest.approx(int(r["voxel_count"]) * voxelMm3)


def test_changing_k_redecodes_from_the_cache(logic, volumes, encodeCalls):
    logic.run(volumes, SETTINGS)
    assert encodeCalls == ["A", "B", "C"]
    report = logic.redecode(RunSettings(M, 3, "cpu"))
    assert len(report.finished) == 3
    assert encodeCalls == ["A", "B", "C"]  # the UNet did not run again
    for volume in volumes:
        assert segmentIds(logic.previewNode(volume.GetID())) == protocolSegmentIds(M, 3, 0)
    # Changed voxels invalidate that volume's cache only.
    volumes[1].GetImageData().GetPointData().GetScalars().Modified()
    logic.run(volumes, RunSettings(M, 3, "cpu"))
    assert encodeCalls == ["A", "B", "C", "B"]


def test_bad_volumes_are_reported_while_the_others_finish(scene, logic, volumes):
    vector = slicer.vtkMRMLVectorVolumeNode()
    vector.SetName("rgb")
    scene.AddNode(vector)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(8, 8, 3)
    imageData.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    vector.SetAndObserveImageData(imageData)
    empty = slicer.vtkMRMLScalarVolumeNode()
    empty.SetName("empty")
    scene.AddNode(empty)
    constant = addVolume(scene, "constant", sitk.Image(24, 24, 6, sitk.sitkFloat32))
    report = logic.run([vector, volumes[0], empty, constant, volumes[1]], SETTINGS)
    assert report.finished == [volumes[0].GetID(), volumes[1].GetID()]
    messages = {e.volumeName: e.message for e in report.errors}
    assert set(messages) == {"rgb", "empty", "constant"}
    assert "vector" in messages["rgb"] and "no image data" in messages["empty"] and "constant" in messages["constant"]
    assert not report.outOfMemory


def test_folder_loading_refuses_4d_vector_and_segmentation_files(scene, tmp_path):
    sitk.WriteImage(syntheticImage(seed=1), str(tmp_path / "good.nrrd"))
    sitk.WriteImage(syntheticImage((5, 20, 20), seed=2), str(tmp_path / "also good.nii.gz"))
    frames = [sitk.GetImageFromArray(np.full((4, 8, 8), t, np.float32)) for t in range(2)]
    sitk.WriteImage(sitk.JoinSeries(frames), str(tmp_path / "time.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8, 3), np.uint8), isVector=True), str(tmp_path / "rgb.nrrd"))
    (tmp_path / "broken.nrrd").write_text("not an image")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), np.uint8)), str(tmp_path / "x.seg.nrrd"))
    (tmp_path / "notes.txt").write_text("skip me")
    nodes, errors = loadVolumeFolder(scene, tmp_path)
    assert [n.GetName() for n in nodes] == ["also good", "good"]
    assert scalarVolumeNodes(scene) == nodes
    reasons = {Path(e.path).name: e.message for e in errors}
    assert set(reasons) == {"time.nrrd", "rgb.nrrd", "broken.nrrd"}
    assert "4D" in reasons["time.nrrd"] and "vector" in reasons["rgb.nrrd"]


def test_volume_removed_while_running(scene, logic, volumes):
    def progress(info):
        if info.volumeName == "A" and volumes[1].GetScene() is not None:
            scene.RemoveNode(volumes[1])  # removed before its turn
        if info.volumeName == "C" and info.stage == "encoding":
            scene.RemoveNode(volumes[2])  # removed during its own encoding

    report = logic.run(volumes, SETTINGS, progress=progress)
    assert report.finished == [volumes[0].GetID()]
    assert [e.volumeName for e in report.errors] == ["B", "C"]
    assert all("removed from the scene" in e.message for e in report.errors)
    assert logic.previewNode(volumes[2].GetID()) is None
    assert [r.volumeID for r in logic.finishedResults()] == [volumes[0].GetID()]


def test_cancel_part_way_keeps_what_finished(logic, volumes, encodeCalls):
    seen = []

    def cancel():
        return "B" in seen

    report = logic.run(volumes, SETTINGS, progress=lambda info: seen.append(info.volumeName), cancel=cancel)
    assert report.cancelled and report.finished == [volumes[0].GetID()] and not report.errors
    assert logic.previewNode(volumes[0].GetID()) is not None
    assert logic.previewNode(volumes[1].GetID()) is None and logic.previewNode(volumes[2].GetID()) is None
    report = logic.run(volumes, SETTINGS)
    assert len(report.finished) == 3 and encodeCalls.count("A") == 1


def test_out_of_memory_is_flagged_for_a_cpu_retry(logic, volumes, model, monkeypatch):
    real = pancakes.predictor.Predictor.decode

    def decode(self, *args, **kwargs):
        if self.image.GetSize() == (28, 20, 5):  # volume B
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pancakes.predictor.Predictor, "decode", decode)
    report = logic.run(volumes, SETTINGS)
    assert report.outOfMemory and [e.volumeName for e in report.errors] == ["B"]
    assert report.errors[0].outOfMemory and "out of memory" in report.errors[0].message
    assert report.finished == [volumes[0].GetID(), volumes[2].GetID()]
    assert isOutOfMemory(MemoryError()) and not isOutOfMemory(ValueError("bad input"))


def test_thumbnails_use_the_label_colours(logic, volumes):
    logic.run(volumes, SETTINGS)
    from PancakesSegmentLib.VolumeConversion import imageFromVolumeNode

    image = imageFromVolumeNode(volumes[1])
    labels = logic.labels(volumes[1].GetID(), 3)
    rgb = protocol_thumbnails(image, {3: labels}, M, K, size=64, opacity=1.0)[3]
    assert rgb.dtype == np.uint8 and rgb.shape == (46, 64, 3)  # 20 x 0.8 mm by 28 x 0.8 mm: 64 * 20 / 28 = 45.7
    colours = {tuple(c) for c in rgb.reshape(-1, 3)}
    palette = {protocols.colour(M, K, 3, k) for k in range(K)}
    assert colours <= palette and len(colours) > 1
    # The same label has the same colour in every scan.
    other = protocol_thumbnails(imageFromVolumeNode(volumes[0]), {3: logic.labels(volumes[0].GetID(), 3)}, M, K,
                                size=64, opacity=1.0)[3]
    assert {tuple(c) for c in other.reshape(-1, 3)} <= palette


def test_volume_table_has_one_line_per_label_and_a_column_per_scan(logic, volumes):
    logic.run(volumes, SETTINGS)
    rows = []
    for volume in volumes:
        rows += segmentationVolumeRows(logic.previewNode(volume.GetID()), volume.GetName())
    header, table = volumeTable(rows)
    assert header == ["segment_id", "A", "B", "C"]
    assert [line[0] for line in table] == protocolSegmentIds(M, K, 0)
    for column, volume in enumerate(volumes, start=1):
        dims, spacing = volume.GetImageData().GetDimensions(), volume.GetSpacing()
        assert sum(line[column] for line in table) == pytest.approx(np.prod(dims) * np.prod(spacing))


def test_run_settings_are_checked():
    assert RunSettings().protocols == 8 and RunSettings().labels == 20
    assert RunSettings(device="GPU").validated().device == "cuda"
    assert RunSettings().adapt is True and RunSettings().coarse is True and RunSettings().superpixels is True
    for bad in (RunSettings(protocols=0), RunSettings(labels=256), RunSettings(device="tpu"), RunSettings(axis="oblique"),
                RunSettings(adapt="yes"), RunSettings(coarse=1), RunSettings(superpixels="no")):
        with pytest.raises(PancakesInputError):
            bad.validated()


def test_kept_segmentation_found_by_volume_and_protocol(logic, volumes):
    logic.run(volumes, SETTINGS)
    assert findKeptNode(logic.scene, volumes[0].GetID(), M, K, 2) is None
    kept = keepProtocol(logic, 2)
    assert findKeptNode(logic.scene, volumes[0].GetID(), M, K, 2) is kept[0]
    assert findKeptNode(logic.scene, volumes[0].GetID(), M, K, 1) is None


@pytest.mark.parametrize("direction", [None, (-1, 0, 0, 0, -1, 0, 0, 0, 1)], ids=["LPS", "RAS-ordered"])
def test_axial_thumbnail_shows_anterior_up_and_patient_left_on_the_right(direction):
    from PancakesSegmentLib.Browse import thumbnailImageData

    image = syntheticImage((3, 8, 8), direction=direction)
    size = image.GetSize()
    labels = sitk.Image(size, sitk.sitkUInt8)
    labels.CopyInformation(image)
    labels += 1
    # Label 2 where the patient's right-anterior quadrant is (small L and small P in LPS).
    cx, cy, _ = labels.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in size])
    for k in range(size[2]):
        for j in range(size[1]):
            for i in range(size[0]):
                x, y, _ = labels.TransformIndexToPhysicalPoint((i, j, k))
                if x < cx and y < cy:  # physical LPS coordinates
                    labels[i, j, k] = 2
    thumbs = protocol_thumbnails(image, {0: labels, 1: labels}, 2, 3, size=8, opacity=1.0)
    rgb = thumbs[0]
    assert tuple(rgb[0, 0]) == protocols.colour(2, 3, 0, 1)  # top left: anterior, patient's right
    assert tuple(rgb[-1, -1]) == protocols.colour(2, 3, 0, 0)
    np.testing.assert_array_equal(thumbs[0], thumbs[1])  # colour follows the label, not the protocol
    imageData = thumbnailImageData(rgb)  # bottom-up rows for Qt's conversion
    assert imageData.GetDimensions() == (8, 8, 1)
    assert imageData.GetScalarComponentAsDouble(0, 7, 0, 0) == rgb[0, 0, 0]


def test_voxel_volume_of_a_sheared_labelmap_matches_the_cli(scene):
    # The Slicer volume table and the CLI's volumes.csv must agree; on a sheared grid
    # (gantry tilt) the plain product of spacings overstates every voxel.
    from PancakesSegmentLib.Browse import voxelVolumeMm3
    from pancakes.label_volumes import voxel_volume_mm3

    tilt = np.deg2rad(20)
    direction = np.array([[1, 0, 0], [0, 1, np.sin(tilt)], [0, 0, np.cos(tilt)]])  # unit columns, not orthogonal
    spacing = (0.8, 0.9, 2.5)
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(4, 4, 4)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, direction[r, c] * spacing[c])
    labelmap.SetImageToWorldMatrix(matrix)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segment = slicer.vtkSegment()
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), labelmap)
    node.GetSegmentation().AddSegment(segment, "s1")
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetDirection(direction.ravel().tolist())
    assert voxelVolumeMm3(node) == pytest.approx(voxel_volume_mm3(image))
    assert voxelVolumeMm3(node) == pytest.approx(np.prod(spacing) * np.cos(tilt))
