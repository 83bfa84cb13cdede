"""What the refine tests share: a scene with a rotated anisotropic volume and a segmentation, stand-in refiners,
and helpers (RAS of a voxel, markups from points, every segment's mask). Imported by test_refine_*.py and
test_segment_slabs.py; fixtures imported into a test module are that module's fixtures."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.RefineClicks import clicksOnSlice, isNegativePoint, rasToArrayIndex, sliceAxisFromViews  # noqa: E402
from PancakesSegmentLib.RefineLogic import RefineLogic  # noqa: E402
from PancakesSegmentLib.SegmentSlabs import segmentMask, segmentSlab, writeSegmentMask, writeSegmentSlab  # noqa: E402
from PancakesSegmentLib.Segments import createSegmentationNode, fillSegmentation  # noqa: E402
from PancakesSegmentLib.SelfTest import addVolume, rotatedDirection, syntheticImage  # noqa: E402
from PancakesSegmentLib.VolumeConversion import ijkToRasMatrix, imageFromVolumeNode  # noqa: E402
from pancakes.errors import PancakesInputError  # noqa: E402

torch.set_num_threads(1)
SHAPE = (6, 24, 20)  # (k, j, i)


class ClickStampRefiner:
    """Test double with the Refiner's volume API: sets the voxel nearest each positive click,
    clears it at negative clicks, and records its calls, so geometry can be checked exactly."""

    def __init__(self) -> None:
        self.calls = []
        self.windows = []  # the volumes volume_window was asked about

    LOGIT = 4.5  # the slice logits it returns: +LOGIT inside its result, -LOGIT outside

    def volume_window(self, volume):
        self.windows.append(np.array(volume, copy=True))
        return float(np.nanmin(volume)), float(np.nanmax(volume))

    def refine_slice_of_volume(self, volume, axis, index, seed_slice, positive, negative, previous=None,
                               spacing=None, window=None):
        """The clicked slice's logits [rows, cols] (its seed stamped with the clicks)."""
        self.calls.append(dict(axis=axis, index=index, seed=np.array(seed_slice, copy=True),
                               positive=list(positive), negative=list(negative), previous=previous,
                               spacing=spacing, window=window))
        seed = np.expand_dims(np.asarray(seed_slice, bool), axis)
        out = self._stamp(axis, 0, seed, positive, negative)
        return np.where(np.take(out, 0, axis=axis), self.LOGIT, -self.LOGIT).astype(np.float32)

    def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                            propagate=False, spacing=None, with_logits=False, window=None):
        self.calls.append(dict(axis=axis, index=index, seed=np.take(seed, index, axis=axis).copy(),
                               positive=list(positive), negative=list(negative), previous=previous,
                               spacing=spacing, propagate=propagate, window=window, depth=volume.shape[axis]))
        out = self._stamp(axis, index, seed, positive, negative)
        logits = np.where(np.take(out, index, axis=axis), self.LOGIT, -self.LOGIT).astype(np.float32)
        return (out, logits) if with_logits else out

    @staticmethod
    def _stamp(axis, index, seed, positive, negative):
        out = seed.copy()
        for clicks, value in ((positive, True), (negative, False)):
            for r, c in clicks:
                voxel = [0, 0, 0]
                voxel[axis] = index
                plane = [a for a in range(3) if a != axis]
                voxel[plane[0]], voxel[plane[1]] = int(round(r)), int(round(c))
                out[tuple(voxel)] = value
        return out


class PatternRefiner(ClickStampRefiner):
    """Test double whose result on a slice is a fixed pseudo-random third of its pixels, whatever
    the seed and clicks: one update then gains and loses many voxels at once."""

    def refine_slice_of_volume(self, volume, axis, index, seed_slice, positive, negative, previous=None,
                               spacing=None, window=None):
        super().refine_slice_of_volume(volume, axis, index, seed_slice, positive, negative, previous, spacing, window)
        return np.where(self.pattern(np.shape(seed_slice)), self.LOGIT, -self.LOGIT).astype(np.float32)

    @staticmethod
    def pattern(shape):
        return np.random.default_rng(sum(shape)).random(shape) < 0.35



@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def volume(scene):
    """Rotated about two axes, anisotropic (1.2, 0.7, 3.0) mm, off-origin."""
    return addVolume(scene, "rotated", syntheticImage(SHAPE, (1.2, 0.7, 3.0), rotatedDirection(), (5, -3, 7), seed=3))


@pytest.fixture
def segmentation(scene, volume):
    """Protocol segmentation of 3 labels: L01 rows 5..11, L02 rows 12..19 (cols 4..9), L03 empty."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 5:12, 4:10] = 1
    labels[:, 12:20, 4:10] = 2
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(imageFromVolumeNode(volume))
    node = createSegmentationNode(scene, volume, "seg")
    fillSegmentation(node, volume, image, 4, 3, 0)
    return node


@pytest.fixture
def tiny_refiner(tmp_path):
    """A real Refiner with a small untrained network (its logits depend on every input)."""
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.refine import Refiner
    from pancakes.modeling.refine_net import RefineNet

    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    return Refiner.load(path, device="cpu")


def ras(volume, k, j, i):
    return (ijkToRasMatrix(volume) @ np.array([i, j, k, 1.0]))[:3]


def markups(scene, points, descriptions=None):
    node = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(node)
    for n, p in enumerate(points):
        idx = node.AddControlPoint([float(v) for v in p], f"F-{n + 1}")
        if descriptions:
            node.SetNthControlPointDescription(idx, descriptions[n])
    return node


def masks(segmentation, volume):
    seg = segmentation.GetSegmentation()
    return {seg.GetNthSegmentID(i): segmentMask(segmentation, seg.GetNthSegmentID(i), volume)
            for i in range(seg.GetNumberOfSegments())}
