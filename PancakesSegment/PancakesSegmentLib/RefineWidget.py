"""The click-refinement section of the panel (Qt, thin): place points, see the segment change.

All work is done by RefineLogic.RefineLogic; this file only places markups, calls
the logic when a point is placed, and shows errors. The module's widget embeds it
and tells it what to refine::

    self.refinePanel = RefinePanel()
    self.ui.refineLayout.addWidget(self.refinePanel)          # any layout of the panel
    self.refinePanel.setTarget(segmentationNode, segmentId, volumeNode)   # on label choice
    self.refinePanel.setTarget(None, None, None)                          # nothing to refine
"""
from __future__ import annotations

import logging

import qt
import slicer
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from pancakes.contract import PROPAGATION_REACH_MM
from pancakes.errors import ModelFileError, PancakesInputError

from .RefineLogic import RefineLogic
from .TorchCheck import torchProblem
from .WidgetRun import offerScikitImageInSlicer

POINT_LISTS = (("positive", "Pancakes +", (0.2, 0.9, 0.2)), ("negative", "Pancakes \u2212", (0.95, 0.2, 0.2)))


def saveStateInSegmentEditor(segmentationNode) -> None:
    """Record a state in the Segment Editor's undo stack when it edits ``segmentationNode``,
    so that its Undo (Ctrl+Z) also steps back through refinements. Best effort: the panel's
    own Undo (same vtkSegmentationHistory mechanism) works without it.

    Only once the Segment Editor has been shown (its widget makes the scene's segment editor
    node): asking for its widget representation earlier would build the whole editor."""
    if segmentationNode.GetScene() is None or \
            segmentationNode.GetScene().GetFirstNodeByClass("vtkMRMLSegmentEditorNode") is None:
        return
    try:
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        if editor.segmentationNode() is not None and editor.segmentationNode().GetID() == segmentationNode.GetID():
            editor.saveStateForUndo()
    except Exception:  # noqa: BLE001 - the Segment Editor module is optional here
        pass


class RefinePanel(qt.QWidget, VTKObservationMixin):
    """Positive/negative point placement, 'Propagate to neighbouring slices', Undo, Redo and Done."""

    def __init__(self, parent=None, logic: RefineLogic = None, device: str = "auto") -> None:
        qt.QWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic or RefineLogic(device=device)
        self.logic.beforeChange = saveStateInSegmentEditor
        # Called with (segmentation node, volume node) when a target is set: the panel decodes a kept label's
        # seed cores there (SegmentationLogic.prepareSeedCores), so the first click does not wait for them.
        self.prepareSeeds = None
        self._target = (None, None, None)
        self._preparedVolumeID = None
        self._markups = {}
        # The segment selector emits currentSegmentChanged before currentNodeChanged: a
        # zero-delay single shot lets both settle, then the warm-up runs once, on the right volume.
        self._prepareTimer = qt.QTimer()
        self._prepareTimer.setSingleShot(True)
        self._prepareTimer.setInterval(0)
        self._prepareTimer.timeout.connect(self._prepare)
        layout = qt.QFormLayout(self)
        self._placeWidgets = {}
        for kind, _name, _colour in POINT_LISTS:
            place = slicer.qSlicerMarkupsPlaceWidget()
            place.setMRMLScene(slicer.mrmlScene)
            place.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
            place.buttonsVisible = False
            place.placeButton().show()
            # The place button is an icon-only QToolButton: without this style its text never shows.
            place.placeButton().setToolButtonStyle(qt.Qt.ToolButtonTextBesideIcon)
            place.placeButton().setText(_("Add") if kind == "positive" else _("Remove"))
            place.placeButton().setToolTip(_("Click in a slice view on what belongs to the label") if kind == "positive"
                                           else _("Click in a slice view on what does not belong to the label"))
            self._placeWidgets[kind] = place
        layout.addRow(_("Clicks:"), self._row(self._placeWidgets["positive"], self._placeWidgets["negative"]))
        self.propagateCheckBox = qt.QCheckBox(_("Propagate to neighbouring slices"))
        # How far a click spreads either side; the refiner's default (contract.PROPAGATION_REACH_MM) to start with.
        self.reachSpinBox = qt.QDoubleSpinBox()
        self.reachSpinBox.setRange(1.0, 1000.0)
        self.reachSpinBox.setDecimals(0)
        self.reachSpinBox.setSuffix(" mm")
        self.reachSpinBox.value = PROPAGATION_REACH_MM
        self.reachSpinBox.setToolTip(_("How far a click's result may spread either side of its slice (it stops "
                                       "sooner where the structure ends; at least the adjacent slices); click "
                                       "again further along to carry it on"))
        self.reachSpinBox.enabled = False
        self.propagateCheckBox.toggled.connect(lambda on: setattr(self.reachSpinBox, "enabled", on))
        layout.addRow(self._row(self.propagateCheckBox, qt.QLabel(_("up to")), self.reachSpinBox))
        self.undoButton = qt.QPushButton(_("Undo"))
        self.redoButton = qt.QPushButton(_("Redo"))
        self.doneButton = qt.QPushButton(_("Done"))
        self.undoButton.clicked.connect(self.onUndo)
        self.redoButton.clicked.connect(self.onRedo)
        self.doneButton.clicked.connect(self.onDone)
        layout.addRow(self._row(self.undoButton, self.redoButton, self.doneButton))
        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
        layout.addRow(self.statusLabel)
        self._updateEnabled()

    @staticmethod
    def _row(*widgets):
        row = qt.QWidget()
        box = qt.QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            box.addWidget(w)
        return row

    def setTarget(self, segmentationNode, segmentId, volumeNode) -> None:
        """What the next clicks refine; a new target ends the current session."""
        if (segmentationNode, segmentId, volumeNode) != self._target:
            self.onDone()
        self._target = (segmentationNode, segmentId, volumeNode)
        if volumeNode is not None and volumeNode.GetID() != self._preparedVolumeID:
            self._prepareTimer.start()
        if self.prepareSeeds is not None and segmentationNode is not None and volumeNode is not None:
            # A kept label's protocol is decoded now (seconds on a CT): shown after half a second, cancellable,
            # and a cancel only costs the core and the prior (clicks then start from the segment as it stands).
            dialog = slicer.util.createProgressDialog(self, 0, 1, _("Reading the protocol for refinement..."),
                                                      _("Pancakes"), minimumDuration=500)
            qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
            try:
                if not self.prepareSeeds(segmentationNode, volumeNode, **self._progressCallbacks(dialog)):
                    self.statusLabel.text = _("Cancelled: clicks refine the segment as it stands, without its "
                                              "protocol's core. Pick it again to read the protocol.")
            except Exception:  # noqa: BLE001 - a failure only costs the cores: clicks then start from the segment
                logging.exception("PancakesSegment: decoding the seed cores failed")
            finally:
                qt.QApplication.restoreOverrideCursor()
                dialog.close()
        self._updateEnabled()

    def setDevice(self, device: str) -> None:
        """The panel's device ("auto", "cpu", "cuda"): the refiner is loaded there."""
        if device != self.logic.device:
            self.logic.setDevice(device)
            self._preparedVolumeID = None

    def _prepare(self) -> None:
        """Load the model and warm it up now, so that the first click is as quick as the next.

        Every failure (no or too old PyTorch, an unreadable model file, a constant volume, ...)
        is said in the status line, never raised out of the Qt slot."""
        volumeNode = self._target[2]
        if volumeNode is None:
            return
        problem = torchProblem()
        if problem:
            self.statusLabel.text = problem
            return
        if offerScikitImageInSlicer():
            self.logic.release()  # a refiner loaded before lacks the clicks' geodesic reach
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            self.logic.prepare(volumeNode)
            self._preparedVolumeID = volumeNode.GetID()
            self.statusLabel.text = ""
        except (PancakesInputError, ModelFileError) as error:
            self.statusLabel.text = str(error)  # e.g. a constant volume: said now, not at the first click
        except Exception as error:  # noqa: BLE001 - a Qt slot must not raise
            logging.exception("PancakesSegment: preparing refinement failed")
            self.statusLabel.text = _("Refinement is not available: {error}").format(error=error)
        finally:
            qt.QApplication.restoreOverrideCursor()

    def cleanup(self) -> None:
        """Module reload or close: stop the timer, drop the model, remove the point lists."""
        self._prepareTimer.stop()
        self.removeObservers()
        self.logic.release()
        for node in self._markups.values():
            if slicer.mrmlScene.GetNodeByID(node.GetID()) is not None:
                slicer.mrmlScene.RemoveNode(node)
        self._markups.clear()

    def _markupsNode(self, kind: str):
        node = self._markups.get(kind)
        if node is None or slicer.mrmlScene.GetNodeByID(node.GetID()) is None:
            name, colour = {k: (n, c) for k, n, c in POINT_LISTS}[kind]
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetSelectedColor(colour)
            node.GetDisplayNode().SetPointLabelsVisibility(False)
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced)
            self._markups[kind] = node
            self._placeWidgets[kind].setCurrentNode(node)
        return node

    def onPointPlaced(self, caller=None, event=None) -> None:
        segmentationNode, segmentId, volumeNode = self._target
        if segmentationNode is None:
            return
        problem = torchProblem()
        if problem:
            self.statusLabel.text = problem
            return
        propagate = self.propagateCheckBox.checked
        # Spreading is one solve, under a second on a CT (pancakes.refine.propagation), with nothing to report on
        # the way: the wait cursor says it is working.
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            result = self.logic.refine(segmentationNode, segmentId, volumeNode, self._markupsNode("positive"),
                                       self._markupsNode("negative"), propagate=propagate,
                                       reachMm=float(self.reachSpinBox.value))
            if len(result.changedSlices) > 1:
                self.statusLabel.text = _("Slices {first}-{last}: {count} voxels changed.").format(
                    first=result.changedSlices[0], last=result.changedSlices[-1], count=result.voxelsChanged)
            else:
                self.statusLabel.text = _("Slice {index}: {count} voxels changed.").format(
                    index=result.index, count=result.voxelsChanged)
        except (PancakesInputError, ModelFileError) as error:
            # Input problems (clicks on two slices, outside the volume, no model) read as a status line.
            self.statusLabel.text = str(error)
        except Exception as error:  # noqa: BLE001 - anything else is a bug worth a dialog
            slicer.util.errorDisplay(_("Refinement failed: {error}").format(error=error), windowTitle=_("Pancakes"))
        finally:
            qt.QApplication.restoreOverrideCursor()
        self._updateEnabled()

    @staticmethod
    def _progressCallbacks(dialog) -> dict:
        """A long step's progress(done, total) and cancel(), shown on and read from ``dialog`` (a QProgressDialog):
        the decode of a kept label's protocol, and the spreading of a click to neighbouring slices."""
        def progress(done: int, total: int) -> None:
            dialog.maximum = total
            dialog.value = done
            slicer.app.processEvents()  # paints the dialog and lets its Cancel be pressed

        return {"progress": progress, "cancel": lambda: dialog.wasCanceled}

    def onUndo(self) -> None:
        self.logic.undo()
        self._updateEnabled()

    def onRedo(self) -> None:
        self.logic.redo()
        self._updateEnabled()

    def onDone(self) -> None:
        """Keep the segment as it is and clear the points: the next clicks start a new session."""
        self.logic.finish()
        for node in self._markups.values():
            if slicer.mrmlScene.GetNodeByID(node.GetID()) is not None:
                node.RemoveAllControlPoints()
        self.statusLabel.text = ""
        self._updateEnabled()

    def _updateEnabled(self) -> None:
        ready = self._target[0] is not None
        for kind, place in self._placeWidgets.items():
            place.enabled = ready
            if ready:
                self._markupsNode(kind)
        self.undoButton.enabled = self.logic.canUndo()
        self.redoButton.enabled = self.logic.canRedo()
        self.doneButton.enabled = ready
