"""The panel smoke test that "Reload and Test" runs (Qt: needs the Slicer application).

It builds the panel the way a user opens it, runs it on a bundled sample, and sets a
refine target, failing on any Python error raised in a Qt slot on the way (a reload
that raises in onDeviceChanged, a refine section without torch, ...). Without a usable
PyTorch it fails with the reason instead of passing silently.

Usage (Slicer's Python console, or PancakesSegmentTest.test_Panel)::

    from PancakesSegmentLib.PanelTest import runPanelSmokeTest
    runPanelSmokeTest(log=print)
"""
from __future__ import annotations

import io
import sys
import traceback
from typing import Callable, List, Optional

import qt
import slicer

from .SampleDataSources import SAMPLE_DIR
from .TorchCheck import torchProblem

SAMPLE = "breast1.nrrd"  # the smallest bundled volume (45 x 120 x 21)


class PythonErrors:
    """Collect Python errors raised in Qt slots while active.

    PythonQt reports a slot's exception with PyErr_Print, which goes through
    sys.excepthook and writes a traceback to sys.stderr; both are watched."""

    def __enter__(self) -> "PythonErrors":
        self.errors: List[str] = []
        self._hook, self._stderr = sys.excepthook, sys.stderr
        sys.excepthook = self._onException
        sys.stderr = _Tee(self._stderr, self.errors)
        return self

    def __exit__(self, *exc) -> None:
        sys.excepthook, sys.stderr = self._hook, self._stderr

    def _onException(self, kind, value, tb) -> None:
        self.errors.append("".join(traceback.format_exception(kind, value, tb)))
        self._hook(kind, value, tb)

    def check(self, step: str) -> None:
        if self.errors:
            raise AssertionError(f"Python errors while {step}:\n" + "\n".join(self.errors))


class _Tee(io.TextIOBase):
    def __init__(self, stream, errors: List[str]) -> None:
        self._stream, self._errors = stream, errors

    def write(self, text: str) -> int:
        if "Traceback (most recent call last)" in text:
            self._errors.append(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


def _settle(msec: int = 50) -> None:
    """Let single-shot timers fire (the volume list, the refine warm-up)."""
    for _ in range(5):
        qt.QTimer.singleShot(msec // 5, lambda: None)
        slicer.app.processEvents()


def runPanelSmokeTest(log: Optional[Callable[[str], None]] = None) -> None:
    """Open the panel, run it on a sample volume, set a refine target; raise on any failure."""
    log = log or (lambda text: None)
    problem = torchProblem()
    if problem:
        raise AssertionError(f"The panel test needs PyTorch: {problem}")
    with PythonErrors() as errors:
        log("Opening the Pancakes panel")
        slicer.util.selectModule("PancakesSegment")
        panel = slicer.util.getModuleWidget("PancakesSegment").widget
        _settle()
        errors.check("building the panel")

        log(f"Running on {SAMPLE}")
        volumeNode = slicer.util.loadVolume(str(SAMPLE_DIR / SAMPLE))
        panel.updateVolumeList()
        for row in range(panel.ui.volumeListWidget.count):
            item = panel.ui.volumeListWidget.item(row)
            item.setCheckState(qt.Qt.Checked if item.data(qt.Qt.UserRole) == volumeNode.GetID() else qt.Qt.Unchecked)
        panel.ui.protocolsSpinBox.value = 2
        panel.ui.labelsSpinBox.value = 4
        panel.ui.deviceComboBox.setCurrentIndex(panel.ui.deviceComboBox.findData("cpu"))
        panel.onRun()
        _settle()
        errors.check("running")
        finished = [r.volumeID for r in panel.logic.finishedResults()]
        if volumeNode.GetID() not in finished:
            raise AssertionError(f"{SAMPLE} was not segmented: {panel.ui.statusLabel.text}")

        log("Choosing a label to refine")
        preview = panel.logic.previewNode(volumeNode.GetID())
        segmentId = preview.GetSegmentation().GetNthSegmentID(0)
        panel.ui.refineSegmentSelector.setCurrentNode(preview)
        panel.ui.refineSegmentSelector.setCurrentSegmentID(segmentId)
        _settle(200)
        errors.check("setting a refine target")
        target = panel.refinePanel._target
        if target[0] is not preview or target[1] != segmentId or target[2] is not volumeNode:
            raise AssertionError(f"refine target not set: {target}")
        if panel.refinePanel.statusLabel.text:
            raise AssertionError(f"refine is not ready: {panel.refinePanel.statusLabel.text}")
    log("Panel test passed")
