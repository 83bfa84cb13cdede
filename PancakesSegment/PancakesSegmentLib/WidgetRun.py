"""Running the network from the panel (Qt): devices, Run/Cancel, progress and the report.

A mixin of Widget (Widget.py), kept apart so that each file stays short; it
uses the widget's ``ui``, ``logic`` and parameter node, and calls the logic
with progress and cancel callbacks, processing events between slices so that
Cancel and the views stay responsive.
"""
from __future__ import annotations

import importlib.util
import logging
from typing import Optional

import qt
import slicer
from slicer.i18n import tr as _

from pancakes.errors import ModelFileError, PancakesInputError

from .Parameters import RunSettings
from .ScikitImageOffer import offerScikitImage
from .TorchCheck import TORCH_REQUIREMENT, torchProblem
from .SegmentationLogic import ProgressInfo, RunReport

STAGES = {"encoding": _("encoding"), "decoding": _("decoding")}


def offerScikitImageInSlicer() -> bool:
    """ScikitImageOffer.offerScikitImage with Slicer's dialog, pip (under the wait cursor), settings and status
    bar; never while Slicer runs its tests (a modal dialog would stop them). -> True when installed now."""
    if slicer.app.testingEnabled():
        return False

    def install(package: str) -> None:
        with slicer.util.WaitCursor():
            slicer.util.pip_install(package)

    return offerScikitImage(qt.QSettings(), slicer.util.confirmOkCancelDisplay, install,
                            lambda message: slicer.util.showStatusMessage(message, 15000))


class RunMixin:
    """Device choice, running, cancelling and reporting; mixed into Widget."""

    # ---- devices -----------------------------------------------------------
    def _fillDeviceComboBox(self) -> None:
        """(Re)fill the device choices without signals, then show the saved device again."""
        gpuName = self._gpuName()
        box = self.ui.deviceComboBox
        box.blockSignals(True)  # clear() and the first addItem emit currentIndexChanged
        try:
            box.clear()
            box.addItem(_("Auto ({device})").format(device=gpuName or _("CPU")), "auto")
            box.addItem(_("CPU"), "cpu")
            if gpuName:
                box.addItem(gpuName, "cuda")
            else:
                box.addItem(_("GPU (none found)"), "cuda")
                box.model().item(2).setEnabled(False)
            if self._parameterNode is not None:
                self._selectComboData(box, self._parameterNode.settings.device)
        finally:
            box.blockSignals(False)

    @staticmethod
    def _gpuName() -> Optional[str]:
        """'GPU: <name>' when PyTorch is installed and sees a CUDA device; importing torch only if present."""
        if importlib.util.find_spec("torch") is None:
            return None
        try:
            import torch

            from pancakes.devices import device_description

            return device_description(torch.device("cuda")) if torch.cuda.is_available() else None
        except Exception:  # a broken CUDA setup must not break the module panel
            logging.exception("PancakesSegment: could not query CUDA devices")
            return None

    # ---- running ------------------------------------------------------------
    def _setRunning(self, running: bool) -> None:
        self._running = running
        for widget in (self.ui.volumeListWidget, self.ui.loadFolderButton, self.ui.selectAllVolumesCheckBox,
                       self.ui.settingsCollapsibleButton, self.ui.resultsCollapsibleButton,
                       self.ui.refineCollapsibleButton):
            widget.enabled = not running
        self.ui.runButton.enabled = not running and self.ui.volumeListWidget.count > 0
        self.ui.cancelButton.visible = running
        self.ui.progressBar.visible = running

    def onCancel(self) -> None:
        self._cancelRequested = True
        self.ui.statusLabel.text = _("Cancelling after the current slices…")

    def _onProgress(self, info: ProgressInfo) -> None:
        self.ui.progressBar.value = int(round(100 * info.fraction))
        self.ui.statusLabel.text = _("{volume} ({index}/{count}): {stage} {done}/{total} slices").format(
            volume=info.volumeName, index=info.volumeIndex + 1, count=info.volumeCount,
            stage=STAGES.get(info.stage, info.stage), done=info.done, total=info.total)
        slicer.app.processEvents()  # keeps Cancel and the views responsive between slices

    def _isCancelRequested(self) -> bool:
        slicer.app.processEvents()
        return self._cancelRequested

    def ensureTorch(self) -> bool:
        """PyTorch comes from the PyTorch extension; offer to install it when missing, refuse one too old."""
        if importlib.util.find_spec("torch") is None:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay(
                    _("Pancakes needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, "
                      "restart Slicer, then run again."), windowTitle=_("Pancakes"))
                return False
            try:
                torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)
            except Exception as error:  # pip failures raise (no network, no wheel for this Python, ...)
                logging.exception("PancakesSegment: installing PyTorch failed")
                slicer.util.errorDisplay(_("PyTorch could not be installed: {error}").format(error=error),
                                         windowTitle=_("Pancakes"))
                return False
            if torch is None:
                slicer.util.errorDisplay(_("PyTorch was not installed; Pancakes cannot run without it."),
                                         windowTitle=_("Pancakes"))
                return False
            self._fillDeviceComboBox()
        problem = torchProblem()  # broken or older than TORCH_REQUIREMENT
        if problem:
            slicer.util.errorDisplay(problem, windowTitle=_("Pancakes"))
            return False
        return True

    def onRun(self) -> None:
        volumes = self.checkedVolumeNodes()
        if not volumes:
            slicer.util.warningDisplay(_("Check at least one volume to segment."), windowTitle=_("Pancakes"))
            return
        self._saveSettings()
        self._runAndReport(lambda settings, progress, cancel: self.logic.run(volumes, settings, progress, cancel))

    def onRedecode(self) -> None:
        """M or K changed after a run: decode again from the cached features (the UNet does not run)."""
        if self._running or not self.logic.results:
            return
        self._runAndReport(lambda settings, progress, cancel: self.logic.redecode(settings, progress, cancel))

    def _runAndReport(self, job) -> Optional[RunReport]:
        if not self.ensureTorch():
            return None
        if offerScikitImageInSlicer():  # runs with or without it; the run's settings pick it up from here
            self.refinePanel.logic.release()  # a refiner loaded before lacks the clicks' geodesic reach
        try:
            settings = self._settings()
        except PancakesInputError as error:
            slicer.util.errorDisplay(str(error), windowTitle=_("Pancakes"))
            return None
        self._cancelRequested = False
        self._setRunning(True)
        self.ui.progressBar.value = 0
        report = None
        try:
            with slicer.util.WaitCursor():
                report = job(settings, self._onProgress, self._isCancelRequested)
        except (ModelFileError, PancakesInputError) as error:
            slicer.util.errorDisplay(str(error), windowTitle=_("Pancakes"))
        except Exception as error:
            logging.exception("Pancakes run failed")
            slicer.util.errorDisplay(_("Pancakes failed: {error}").format(error=error), windowTitle=_("Pancakes"))
        finally:
            self._setRunning(False)
        if report is not None:
            self._reportRun(report, settings)
        self._updateResults()
        return report

    def _reportRun(self, report: RunReport, settings: RunSettings) -> None:
        done = _("{finished} volumes segmented").format(finished=len(report.finished))
        if report.cancelled:
            done += _(" (cancelled; finished volumes are kept)")
        self.ui.statusLabel.text = done
        if not report.errors:
            return
        details = "\n".join(e.message for e in report.errors)
        if report.outOfMemory and settings.device != "cpu":
            if slicer.util.confirmYesNoDisplay(
                    _("Some volumes ran out of memory on the GPU. Run them again on the CPU (slower)?"),
                    detailedText=details, windowTitle=_("Pancakes")):
                self._selectComboData(self.ui.deviceComboBox, "cpu")
                failed = [slicer.mrmlScene.GetNodeByID(e.volumeID) for e in report.errors]
                failed = [n for n in failed if n is not None]
                self._runAndReport(lambda s, progress, cancel: self.logic.run(failed, s, progress, cancel))
            return
        slicer.util.warningDisplay(
            _("{count} volumes could not be segmented; the others were.").format(count=len(report.errors)),
            detailedText=details, windowTitle=_("Pancakes"))
