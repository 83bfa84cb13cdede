"""Running Pancakes on a collection of volume nodes, with a feature cache per volume.

The UNet runs once per volume: each volume gets a predictor (pancakes.predictor,
the core's one inference entry point) that keeps its features, cached by volume node
ID, so a new K or M (or browsing protocols) only re-decodes. Each volume's failure is
recorded and the others go on; out-of-memory is flagged so the widget can offer
a retry on the CPU; a cancel stops the run and keeps what finished. Progress
and cancel are callbacks: this class never touches the GUI.

Usage::

    logic = SegmentationLogic(scene)                  # bundled model, loaded on first run
    report = logic.run([ct1, ct2], RunSettings(protocols=8, labels=20),
                       progress=lambda info: print(info.text), cancel=lambda: False)
    logic.setCurrentProtocol(2)                        # previews show protocol 3 everywhere
    logic.redecode(RunSettings(protocols=8, labels=12))  # K changed: no UNet run
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from pancakes import protocols
from pancakes.contract import DEFAULT_ADAPT, Cancel, Cancelled, Progress
from pancakes.errors import ModelFileError, PancakesInputError

from .Keep import labelNames, renameLabel
from .KeptLabelSeeds import KeptLabelSeeds
from .Parameters import RunSettings
from .Segments import ROLE_PREVIEW, createSegmentationNode, fillSegmentation, placeNextToVolume
from .VolumeConversion import ijkToRasMatrix, imageFromVolumeNode


@dataclass
class ProgressInfo:
    """Where a run stands: volume ``volumeIndex`` of ``volumeCount``, ``done`` of ``total`` slices of ``stage``."""

    volumeIndex: int
    volumeCount: int
    volumeName: str
    stage: str  # "encoding" or "decoding"
    done: int
    total: int

    @property
    def fraction(self) -> float:
        """Overall fraction of the run in [0, 1] (encoding counts as most of a volume)."""
        within = self.done / max(1, self.total)
        within = 0.8 * within if self.stage == "encoding" else 0.8 + 0.2 * within
        return min(1.0, (self.volumeIndex + within) / max(1, self.volumeCount))

    @property
    def text(self) -> str:
        return f"{self.volumeName} ({self.volumeIndex + 1}/{self.volumeCount}): {self.stage} {self.done}/{self.total}"


@dataclass
class VolumeError:
    """Why one volume has no result."""

    volumeID: str
    volumeName: str
    message: str
    outOfMemory: bool = False


@dataclass
class RunReport:
    """What a run did: volume IDs that finished, errors per volume, whether it was cancelled."""

    finished: List[str] = field(default_factory=list)
    errors: List[VolumeError] = field(default_factory=list)
    cancelled: bool = False

    @property
    def outOfMemory(self) -> bool:
        return any(e.outOfMemory for e in self.errors)


@dataclass
class VolumeResult:
    """One volume's predictor (which caches its features) and the label volumes shown for (M, K)."""

    volumeID: str
    volumeName: str
    fingerprint: Tuple
    predictor: object  # pancakes.predictor.VolumePredictor
    M: int = 0
    K: int = 0
    adapt: float = 0.0  # the decode-time adaptation strength the labels were decoded with
    coarse: bool = False  # whether the last protocol was merged into figure and ground
    superpixels: bool = False  # whether label boundaries were pooled within superpixels
    labels: List[sitk.Image] = field(default_factory=list)  # one per protocol, values 1..K
    previewNodeID: Optional[str] = None


ProgressCallback = Optional[Callable[[ProgressInfo], None]]
CancelCallback = Optional[Callable[[], bool]]


def isOutOfMemory(error: BaseException) -> bool:
    """True for host or GPU memory exhaustion, whichever library raised it."""
    if isinstance(error, MemoryError):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__):
        return True
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


class SegmentationLogic:
    """Pancakes over a scene's volumes: run, cache, re-decode, preview segmentations."""

    def __init__(self, scene, modelPath=None) -> None:
        self.scene = scene
        self.modelPath = modelPath  # None: the bundled model
        self.model = None
        self.results: Dict[str, VolumeResult] = {}
        self.currentProtocol = 0  # 0-based protocol shown in the previews
        self.settings: Optional[RunSettings] = None  # of the last decode
        self._labelNames: Dict[Tuple[int, int, int], Dict[str, str]] = {}  # (M, K, m) -> {segment ID: name}
        # What a kept label's refinement starts from: its core and its protocol's label prior.
        self.keptSeeds = KeptLabelSeeds(self.finishedResults)

    def clear(self) -> None:
        """Forget every result, rename and the last settings (the scene was closed); a loaded model is kept."""
        self.results = {}
        self.currentProtocol = 0
        self.settings = None
        self._labelNames = {}
        self.keptSeeds.clear()

    def release(self) -> None:
        """Forget every result (their cached features) and drop the loaded model: module reload or close."""
        self.clear()
        self.model = None

    # ---- model --------------------------------------------------------
    def setModel(self, model) -> None:
        """Use an already loaded model (tests, or a model the caller chose): a pancakes.Pancakes, or anything
        with its ``predictor(image, axis, name)``, ``set_adapt``, ``adapt``, ``device`` and optionally
        ``set_coarse`` / ``coarse`` and ``set_superpixels`` / ``superpixels``."""
        self.model = model

    def loadModel(self, device: str = "auto"):
        """Load (or reload on another device) the model; raises ModelFileError, ImportError (no torch)."""
        from pancakes.devices import resolve_device
        from pancakes.engine import Pancakes

        wanted = resolve_device(device)
        if self.model is None or self.model.device != wanted:
            self.model = Pancakes.load(self.modelPath, device=str(wanted))
        return self.model

    # ---- running ------------------------------------------------------
    def run(self, volumeNodes: Sequence, settings: RunSettings, progress: ProgressCallback = None,
            cancel: CancelCallback = None) -> RunReport:
        """Encode (or reuse) and decode each volume, filling one preview segmentation per volume."""
        settings = settings.validated()
        model = self.loadModel(settings.device)
        model.set_adapt(DEFAULT_ADAPT if settings.adapt else 0.0)
        if hasattr(model, "set_coarse"):
            model.set_coarse(settings.coarse)
        if hasattr(model, "set_superpixels"):
            model.set_superpixels(settings.superpixels)
        self.settings = settings
        self.currentProtocol = min(self.currentProtocol, settings.protocols - 1)
        report = RunReport()
        volumes = [(node.GetID(), node.GetName(), node) for node in volumeNodes]
        for index, (volumeID, name, node) in enumerate(volumes):
            def step(stage):
                def callback(done, total):
                    if progress is not None:
                        progress(ProgressInfo(index, len(volumes), name, stage, done, total))
                return callback

            try:
                self._requireInScene(volumeID, node, name)
                result = self._encoded(model, volumeID, name, node, settings, step("encoding"), cancel)
                self._decode(model, result, settings, step("decoding"), cancel)
                self._requireInScene(volumeID, node, name)
                self._showPreview(result, node)
                report.finished.append(volumeID)
            except Cancelled:
                report.cancelled = True
                break
            except Exception as error:  # one volume's failure must not stop the others
                report.errors.append(self._volumeError(volumeID, name, error))
        return report

    def redecode(self, settings: RunSettings, progress: ProgressCallback = None,
                 cancel: CancelCallback = None) -> RunReport:
        """New M or K for every cached volume, from the cached features (the UNet does not run)."""
        volumeNodes = []
        for volumeID in list(self.results):
            node = self.scene.GetNodeByID(volumeID)
            if node is None:
                del self.results[volumeID]  # the user removed it: nothing to show it on
            else:
                volumeNodes.append(node)
        return self.run(volumeNodes, settings, progress, cancel)

    def setCurrentProtocol(self, m: int) -> List:
        """Show protocol m (0-based) in every volume's preview; returns the preview nodes."""
        if self.settings is None or not 0 <= m < self.settings.protocols:
            raise PancakesInputError(f"protocol index {m} is not available; run first")
        self.currentProtocol = m
        nodes = []
        for result in self.results.values():
            node = self.scene.GetNodeByID(result.volumeID)
            if node is not None and result.labels:
                nodes.append(self._showPreview(result, node))
        return nodes

    def renameLabel(self, m: int, k: int, name: str) -> int:
        """Rename label k of protocol m (0-based) everywhere: previews, kept segmentations, future ones."""
        if self.settings is None:
            raise PancakesInputError("run first: there are no labels to rename")
        M, K = self.settings.protocols, self.settings.labels
        renamed = renameLabel(self.scene, M, K, m, k, name)
        self._labelNames.setdefault((M, K, m), {})[protocols.segment_id(M, K, m, k)] = name.strip()
        return renamed

    def labelNamesFor(self, M: int, K: int, m: int) -> Dict[str, str]:
        """Segment ID -> user-given name: from kept segmentations, then from renames in this session."""
        names = labelNames(self.scene, M, K, m)
        names.update(self._labelNames.get((M, K, m), {}))
        return names

    # ---- results ------------------------------------------------------
    def finishedResults(self) -> List[VolumeResult]:
        """Results decoded with the current settings, for volumes still in the scene."""
        if self.settings is None:
            return []
        return [r for r in self.results.values()
                if r.labels and (r.M, r.K) == (self.settings.protocols, self.settings.labels)
                and (r.adapt > 0) == self.settings.adapt and r.coarse == _coarse(self.model)
                and r.superpixels == _superpixels(self.model)
                and self.scene.GetNodeByID(r.volumeID) is not None]

    def labels(self, volumeID: str, m: int) -> sitk.Image:
        """Label volume of protocol m (0-based) for one volume (values 1..K)."""
        return self.results[volumeID].labels[m]

    def seedCore(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int,
                 currentSlice: np.ndarray) -> Optional[np.ndarray]:
        """A kept label's core on one slice (KeptLabelSeeds.seedCore), the seed its refinement starts from."""
        return self.keptSeeds.seedCore(segmentationNode, segmentId, volumeNode, axis, index, currentSlice)

    def labelPrior(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int,
                   currentSlice: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """A kept label's protocol on one slice (KeptLabelSeeds.labelPrior), for the refiner's label prior."""
        return self.keptSeeds.labelPrior(segmentationNode, segmentId, volumeNode, axis, index, currentSlice)

    def prepareSeedCores(self, segmentationNode, volumeNode, progress: Progress = None,
                         cancel: Cancel = None) -> bool:
        """Decode what seedCore and labelPrior read now, when the segment is picked (KeptLabelSeeds.prepare:
        progress and cancel as there; False when cancelled)."""
        return self.keptSeeds.prepare(segmentationNode, volumeNode, progress, cancel)

    def previewNode(self, volumeID: str):
        result = self.results.get(volumeID)
        return self.scene.GetNodeByID(result.previewNodeID) if result and result.previewNodeID else None

    # ---- internals ----------------------------------------------------
    def _requireInScene(self, volumeID: str, node, name: str) -> None:
        # Identity, not just the ID: a node added later could reuse the ID.
        if self.scene.GetNodeByID(volumeID) is not node:
            self.results.pop(volumeID, None)
            raise PancakesInputError(f"{name}: the volume was removed from the scene")

    def _encoded(self, model, volumeID, name, node, settings, progress, cancel) -> VolumeResult:
        fingerprint = _fingerprint(node, settings.axis)
        result = self.results.get(volumeID)
        if result is not None and result.fingerprint == fingerprint:
            return result
        predictor = model.predictor(imageFromVolumeNode(node), settings.axis, name)
        predictor.encode(progress, cancel)
        previewID = result.previewNodeID if result is not None else None
        result = VolumeResult(volumeID, name, fingerprint, predictor, previewNodeID=previewID)
        self.results[volumeID] = result  # cached at once: a cancelled run does not redo it
        return result

    def _decode(self, model, result: VolumeResult, settings: RunSettings, progress, cancel) -> None:
        M, K, adapt, coarse = settings.protocols, settings.labels, float(getattr(model, "adapt", 0.0)), _coarse(model)
        pooled = _superpixels(model)
        if result.labels and (result.M, result.K, result.adapt, result.coarse, result.superpixels) == \
                (M, K, adapt, coarse, pooled):
            return  # what the preview shows already
        labels = result.predictor.decode(M, K, progress=progress, cancel=cancel)
        result.M, result.K, result.adapt, result.coarse, result.superpixels, result.labels = (M, K, adapt, coarse,
                                                                                              pooled, labels)

    def _showPreview(self, result: VolumeResult, volumeNode):
        node = self.scene.GetNodeByID(result.previewNodeID) if result.previewNodeID else None
        if node is None:
            node = createSegmentationNode(self.scene, volumeNode, f"{volumeNode.GetName()} Pancakes")
            placeNextToVolume(node, volumeNode)
            result.previewNodeID = node.GetID()
        m = min(self.currentProtocol, result.M - 1)
        names = self.labelNamesFor(result.M, result.K, m)
        fillSegmentation(node, volumeNode, result.labels[m], result.M, result.K, m, ROLE_PREVIEW, names)
        if node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetVisibility(True)
        return node

    def _volumeError(self, volumeID: str, name: str, error: Exception) -> VolumeError:
        oom = isOutOfMemory(error)
        if oom:
            _releaseGpuMemory()
            message = f"{name}: ran out of memory on {self._deviceName()}"
        elif isinstance(error, (PancakesInputError, ModelFileError)):
            message = str(error)
        else:
            logging.exception("Pancakes failed on %s", name)
            message = f"{name}: {type(error).__name__}: {error}"
        return VolumeError(volumeID, name, message, oom)

    def _deviceName(self) -> str:
        from pancakes.devices import device_description

        return device_description(self.model.device) if self.model is not None else "the device"


def _fingerprint(node, axis: str) -> Tuple:
    """What the cached features depend on: voxels (by modification time), geometry, axis."""
    imageData = node.GetImageData()
    mtime = 0
    if imageData is not None:
        mtime = imageData.GetMTime()
        scalars = imageData.GetPointData().GetScalars() if imageData.GetPointData() else None
        if scalars is not None:
            mtime = max(mtime, scalars.GetMTime())
    return (mtime, tuple(np.round(ijkToRasMatrix(node), 9).ravel()), axis)


def _releaseGpuMemory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _superpixels(model) -> bool:
    """Whether ``model`` pools label boundaries within superpixels (False for models without the option)."""
    return bool(getattr(model, "superpixels", False))


def _coarse(model) -> bool:
    """Whether ``model`` decodes the last protocol coarse (False for models without the option)."""
    return bool(getattr(model, "coarse", False))
