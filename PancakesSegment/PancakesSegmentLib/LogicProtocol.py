"""What the panel needs of its segmentation logic, as a typing.Protocol.

The widget receives its logic (PancakesSegment.py builds SegmentationLogic on the
main scene) instead of building it, and relies on this interface only; a scripted
or test logic that provides it drives the same panel.

Usage::

    widget = Widget(SegmentationLogic(slicer.mrmlScene))   # SegmentationLogic satisfies the protocol
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol, Sequence

from .Parameters import RunSettings


class SegmentationLogicProtocol(Protocol):
    """Run, re-decode, browse and rename; the results it holds (PancakesSegmentLib.SegmentationLogic)."""

    scene: object  # the vtkMRMLScene the logic works on
    results: Dict[str, object]  # volume node ID -> its result (a cached predictor and labels)
    currentProtocol: int  # 0-based protocol the previews show
    settings: Optional[RunSettings]  # of the last decode, None before the first run

    def run(self, volumeNodes: Sequence, settings: RunSettings, progress: Optional[Callable] = None,
            cancel: Optional[Callable[[], bool]] = None):
        """Encode (or reuse) and decode each volume; returns a RunReport."""

    def redecode(self, settings: RunSettings, progress: Optional[Callable] = None,
                 cancel: Optional[Callable[[], bool]] = None):
        """New M or K for every cached volume, without the UNet; returns a RunReport."""

    def setCurrentProtocol(self, m: int) -> List:
        """Show protocol m in every preview."""

    def renameLabel(self, m: int, k: int, name: str) -> int:
        """Rename label k of protocol m everywhere."""

    def labelNamesFor(self, M: int, K: int, m: int) -> Dict[str, str]:
        """Segment ID -> user-given name."""

    def finishedResults(self) -> List:
        """Results decoded with the current settings, for volumes still in the scene."""

    def previewNode(self, volumeID: str):
        """The preview segmentation of one volume, or None."""

    def seedCore(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int, currentSlice):
        """The core of a kept label on one slice, the seed a refinement starts from; None for other segments."""

    def labelPrior(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int, currentSlice):
        """The kept label's protocol on one slice, (labels, confidence bytes), for the refiner's label prior;
        None where seedCore gives None."""

    def prepareSeedCores(self, segmentationNode, volumeNode, progress: Optional[Callable[[int, int], None]] = None,
                         cancel: Optional[Callable[[], bool]] = None) -> bool:
        """Decode what seedCore and labelPrior read now, when the segment is picked, rather than at the first
        click; progress(done, total) hears of it, cancel() returning True stops it (-> False: that label is then
        refined without core and prior until prepared again)."""

    def clear(self) -> None:
        """Forget every result (the scene was closed); a loaded model is kept."""

    def release(self) -> None:
        """Forget every result and drop the loaded model (the panel is closed or reloaded)."""
