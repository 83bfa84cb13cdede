"""A synthetic collection run end to end, shared by the module's self-test and pytest.

The model is a small randomly initialised Pancakes network (no download, a
second or two on a CPU). Untrained, it tends to give one label everywhere, which
would let misaligned segments or flipped geometry pass unnoticed; so
``IntensityBinsModel`` runs the real encoder and decoder and then replaces
protocol m's labels by m + 2 intensity bins of the input. Labels then follow
anatomy-like structure, and most of the K labels stay empty.

Usage (Slicer's Python console)::

    from PancakesSegmentLib.SelfTest import runScenario
    runScenario(slicer.mrmlScene, slicer.app.temporaryPath)
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk

from pancakes import protocols

from .Browse import segmentVoxelCounts
from .Export import exportProtocol
from .Parameters import RunSettings
from .SegmentationLogic import SegmentationLogic
from .Segments import protocolSegmentIds
from .VolumeConversion import updateVolumeNodeFromImage


def makeRandomModel(path) -> Path:
    """Save a small untrained Pancakes TorchScript model to ``path``."""
    import torch

    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.modeling import PancakesNet

    torch.manual_seed(0)
    net = PancakesNet(features=8, levels=3, hidden=16)
    save_torchscript(net, path, default_metadata(net, training={"trained": False, "note": "self-test model"}))
    return Path(path)


class IntensityBinsModel:
    """A loaded pancakes.Pancakes whose predictors give intensity bins as labels (see module docstring).

    It implements the interface the Slicer logic uses (``predictor``, ``set_adapt``, ``adapt``,
    ``device``); the engine and pancakes.predictor know nothing of it.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.device = model.device

    @property
    def adapt(self) -> float:
        return self.model.adapt

    def set_adapt(self, adapt: float) -> float:
        return self.model.set_adapt(adapt)

    @property
    def coarse(self) -> bool:
        return self.model.coarse

    def set_coarse(self, coarse: bool) -> bool:
        return self.model.set_coarse(coarse)

    @property
    def superpixels(self) -> bool:
        return self.model.superpixels

    def set_superpixels(self, superpixels: bool) -> bool:
        return self.model.set_superpixels(superpixels)

    def predictor(self, image, axis="axial", name="volume", plane_axis=None, batch_size=None):
        return IntensityBinsPredictor(self.model.predictor(image, axis, name, plane_axis, batch_size))


class IntensityBinsPredictor:
    """A pancakes.predictor.VolumePredictor: the real encode and decode, then protocol m's labels
    replaced by m + 2 intensity bins of the volume."""

    def __init__(self, real) -> None:
        self.real = real
        self.image = real.image

    @property
    def encoded(self) -> bool:
        return self.real.encoded

    def encode(self, progress=None, cancel=None):
        self.real.encode(progress, cancel)
        return self

    def decode(self, M, K, which=None, progress=None, cancel=None):
        real = self.real.decode(M, K, which, progress, cancel)
        voxels = sitk.GetArrayFromImage(self.image).astype(np.float64)
        out = []
        for m, image in zip(which if which is not None else range(M), real):
            bins = min(K, m + 2)
            edges = np.quantile(voxels, np.linspace(0, 1, bins + 1)[1:-1])
            values = (np.digitize(voxels, edges) + 1).astype(np.uint8)  # 1..bins
            result = sitk.GetImageFromArray(values)
            result.CopyInformation(image)
            out.append(result)
        return out


def syntheticImage(shape=(6, 24, 24), spacing=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0),
                   seed: int = 0) -> sitk.Image:
    """A blob-and-gradient volume (k, j, i) = ``shape`` with the given LPS geometry."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    centre = rng.uniform(-0.3, 0.3, 3)
    blob = np.exp(-((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) / 0.2)
    voxels = (100 * blob + 20 * i + rng.normal(0, 1, shape)).astype(np.float32)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def addVolume(scene, name: str, image: sitk.Image):
    """Add a scalar volume node holding ``image``."""
    import slicer

    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    scene.AddNode(node)
    updateVolumeNodeFromImage(node, image)
    return node


def rotatedDirection(degrees: float = 30.0):
    """A direction matrix rotated about the LPS z axis and flipped in x (row-major, 9 values)."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return tuple((rot @ np.diag([-1.0, 1.0, 1.0])).ravel())


def checkAligned(logic: SegmentationLogic, M: int, K: int, m: int) -> None:
    """Every preview of protocol m has the same K segment IDs, names, colours and label values."""
    expected = protocolSegmentIds(M, K, m)
    for result in logic.finishedResults():
        node = logic.previewNode(result.volumeID)
        segmentation = node.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        assert ids == expected, f"{node.GetName()}: segment IDs {ids}"
        for k, segmentId in enumerate(ids):
            segment = segmentation.GetSegment(segmentId)
            assert segment.GetLabelValue() == protocols.label_value(M, K, m, k)
            assert np.allclose(segment.GetColor(), protocols.colour_float(M, K, m, k))
        counts = segmentVoxelCounts(node)
        labels = sitk.GetArrayViewFromImage(logic.labels(result.volumeID, m))
        for k, segmentId in enumerate(ids):
            assert counts[segmentId] == int(np.count_nonzero(labels == k + 1)), f"{node.GetName()} {segmentId}"


def runScenario(scene, folder=None, log: Optional[Callable[[str], None]] = None) -> dict:
    """Three synthetic volumes -> aligned segmentations -> keep, rename, export, reload. Raises on failure."""
    import slicer

    from pancakes.engine import Pancakes

    log = log or (lambda text: None)
    folder = Path(folder or tempfile.mkdtemp(prefix="PancakesSegmentSelfTest"))
    model = IntensityBinsModel(Pancakes.load(makeRandomModel(folder / "random_pancakes.pt"), device="cpu"))
    log("Adding three synthetic volumes")
    volumes = [
        addVolume(scene, "synthetic A", syntheticImage(seed=1)),
        addVolume(scene, "synthetic B", syntheticImage((5, 20, 28), (0.8, 0.8, 2.5), seed=2)),
        addVolume(scene, "synthetic C", syntheticImage((6, 24, 24), (1.2, 0.7, 3.0), rotatedDirection(), (5, -3, 7), seed=3)),
    ]
    M, K = 4, 6
    logic = SegmentationLogic(scene)
    logic.setModel(model)
    log("Running Pancakes")
    report = logic.run(volumes, RunSettings(M, K, "cpu"))
    assert not report.errors and len(report.finished) == 3, report
    for m in range(M):
        logic.setCurrentProtocol(m)
        checkAligned(logic, M, K, m)
    log("Keeping protocol 2, renaming a label and exporting")
    logic.renameLabel(1, 0, "dark")
    exported = exportProtocol(logic, 1, folder / "export")
    assert len(exported.files) == 3 and exported.volumesCsv.is_file()
    reloadScene = slicer.vtkMRMLScene()
    for path in exported.files:
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(path))
        node = slicer.vtkMRMLSegmentationNode()
        reloadScene.AddNode(node)
        assert storage.ReadData(node), path
        segmentation = node.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        assert ids == protocolSegmentIds(M, K, 1), ids
        assert segmentation.GetSegment(ids[0]).GetName() == "dark"
    log("Self-test passed")
    return {"report": report, "export": exported, "logic": logic}
