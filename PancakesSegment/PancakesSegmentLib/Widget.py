"""The PancakesSegment panel (Qt, with WidgetRun.py, RefineWidget.py and ParameterNode.py; the rest has no Qt).

It turns clicks into calls of the MRML logic it receives (typed as
LogicProtocol.SegmentationLogicProtocol; PancakesSegment.py passes a SegmentationLogic),
and of Keep, Export and Browse; running, with its progress bar and Cancel, is in
WidgetRun.RunMixin, and the "Refine label" section embeds RefineWidget.RefinePanel.
The run settings live in the parameter node (ParameterNode.py) as one parameterPack.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import qt
import slicer
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from pancakes import protocols
from pancakes.render import protocol_thumbnails

from .Browse import segmentationVolumeRows, thumbnailImageData, volumeTable
from .Collection import loadVolumeFolder, scalarVolumeNodes
from .Export import exportProtocol
from .ExportDicom import dicomVolumesOfProtocol, exportProtocolDicomSeg, highdicomInstalled
from .Keep import findKeptNode, keepProtocol
from .LogicProtocol import SegmentationLogicProtocol
from .ParameterNode import (MODULE_NAME, PancakesSegmentParameterNode, createParameterNode, saveSettings, saveValue,
                            savedValue)
from .Parameters import AXIS_NAMES, MAX_LABELS, MAX_PROTOCOLS, RunSettings
from .RefineWidget import RefinePanel
from .Segments import sourceVolumeNode
from .VolumeConversion import imageFromVolumeNode
from .WidgetRun import RunMixin

THUMBNAIL_SIZE = 96


class Widget(qt.QWidget, VTKObservationMixin, RunMixin):
    """Volumes in; protocols to browse, keep and export out."""

    def __init__(self, logic: SegmentationLogicProtocol, parent=None) -> None:
        qt.QWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._cancelRequested = False
        self._running = False
        # Before any signal is connected: filling an empty combo box emits currentIndexChanged(0).
        self._parameterNode = None
        self._parameterNodeGuiTag = None

        layout = qt.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        uiWidget = slicer.util.loadUI(str(self.resourcePath() / "UI" / f"{MODULE_NAME}.ui"))
        layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self._volumeListTimer = self._singleShotTimer(200, self.updateVolumeList)
        self._redecodeTimer = self._singleShotTimer(600, self.onRedecode)

        self.ui.protocolsSpinBox.setMaximum(MAX_PROTOCOLS)
        self.ui.labelsSpinBox.setMaximum(MAX_LABELS)
        self._fillDeviceComboBox()
        self.ui.axisComboBox.blockSignals(True)
        for axis in AXIS_NAMES:
            self.ui.axisComboBox.addItem(_(axis.capitalize()), axis)
        self.ui.axisComboBox.blockSignals(False)

        self.ui.loadFolderButton.clicked.connect(self.onLoadFolder)
        self.ui.selectAllVolumesCheckBox.toggled.connect(self.onSelectAllVolumes)
        self.ui.runButton.clicked.connect(self.onRun)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        # Overloaded Qt signals are connected by signature, so the slots get the int.
        self.ui.protocolsSpinBox.connect("valueChanged(int)", self.onProtocolsOrLabelsChanged)
        self.ui.labelsSpinBox.connect("valueChanged(int)", self.onProtocolsOrLabelsChanged)
        self.ui.adaptCheckBox.toggled.connect(self.onProtocolsOrLabelsChanged)  # re-decodes, like M and K
        self.ui.coarseCheckBox.toggled.connect(self.onProtocolsOrLabelsChanged)
        self.ui.superpixelsCheckBox.toggled.connect(self.onProtocolsOrLabelsChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.axisComboBox.connect("currentIndexChanged(int)", self.onAxisChanged)
        self.ui.protocolListWidget.currentRowChanged.connect(self.onProtocolSelected)
        self.ui.labelTableWidget.itemChanged.connect(self.onLabelItemChanged)
        self.ui.keepButton.clicked.connect(self.onKeep)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.refinePanel = RefinePanel()
        # A kept label's refinement starts from its core, with its protocol's label prior; the segmentation logic
        # decodes both when it is picked.
        self.refinePanel.logic.seedCore = self.logic.seedCore
        self.refinePanel.logic.labelPrior = self.logic.labelPrior
        self.refinePanel.prepareSeeds = self.logic.prepareSeedCores
        self.ui.refineLayout.addWidget(self.refinePanel)
        self.ui.refineSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onRefineSegmentationChanged)
        self.ui.refineSegmentSelector.connect("currentSegmentChanged(QString)", self.updateRefineTarget)
        self.ui.refineVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateRefineTarget)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self._onSceneNodesChanged)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeRemovedEvent, self._onSceneNodesChanged)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneClosed)

        self.setParameterNode(createParameterNode(slicer.mrmlScene))
        self.updateVolumeList()
        self._setRunning(False)
        self._updateResults()

    # ---- resources and parameter node -----------------------------------
    @staticmethod
    def resourcePath() -> Path:
        return Path(__file__).resolve().parent.parent / "Resources"

    @staticmethod
    def _singleShotTimer(msec: int, callback):
        timer = qt.QTimer()
        timer.setSingleShot(True)
        timer.setInterval(msec)
        timer.timeout.connect(callback)
        return timer

    def setParameterNode(self, parameterNode: Optional[PancakesSegmentParameterNode]) -> None:
        if self._parameterNode and self._parameterNodeGuiTag:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        self._parameterNode = parameterNode
        if parameterNode is None:
            return
        self._parameterNodeGuiTag = parameterNode.connectParametersToGui({
            "settings.protocols": self.ui.protocolsSpinBox,
            "settings.labels": self.ui.labelsSpinBox,
            "settings.adapt": self.ui.adaptCheckBox,
            "settings.coarse": self.ui.coarseCheckBox,
            "settings.superpixels": self.ui.superpixelsCheckBox,
        })
        self._selectComboData(self.ui.deviceComboBox, parameterNode.settings.device)
        self._selectComboData(self.ui.axisComboBox, parameterNode.settings.axis)
        self.refinePanel.setDevice(parameterNode.settings.device)

    def _settings(self) -> RunSettings:
        """The parameter node's settings, checked: a copy, so edits during a run do not change it."""
        return self._parameterNode.settings.validated()

    def _saveSettings(self) -> None:
        saveSettings(self._parameterNode)

    @staticmethod
    def _selectComboData(comboBox, data) -> None:
        index = comboBox.findData(data)
        if index >= 0:
            comboBox.setCurrentIndex(index)

    def cleanup(self) -> None:
        """Module reload or close: nothing of this panel may outlive it (timers, model, features, point lists)."""
        for timer in (self._volumeListTimer, self._redecodeTimer):
            timer.stop()
        self.removeObservers()
        self.refinePanel.cleanup()
        self.logic.release()
        self.setParameterNode(None)

    # ---- settings -----------------------------------------------------------
    def onDeviceChanged(self, index: int) -> None:
        if self._parameterNode is not None and index >= 0:
            self._parameterNode.settings.device = self.ui.deviceComboBox.itemData(index)
            self._saveSettings()
            self.refinePanel.setDevice(self._parameterNode.settings.device)

    def onAxisChanged(self, index: int) -> None:
        if self._parameterNode is not None and index >= 0:
            self._parameterNode.settings.axis = self.ui.axisComboBox.itemData(index)
            self._saveSettings()

    def onProtocolsOrLabelsChanged(self, _value=None) -> None:
        # Read the spin boxes: the parameter node may be updated after this slot runs.
        saveValue("protocols", self.ui.protocolsSpinBox.value)
        saveValue("labels", self.ui.labelsSpinBox.value)
        saveValue("adapt", self.ui.adaptCheckBox.checked)
        saveValue("coarse", self.ui.coarseCheckBox.checked)
        saveValue("superpixels", self.ui.superpixelsCheckBox.checked)
        if self.logic.results and not self._running:
            self._redecodeTimer.start()  # wait for the spin box to settle

    # ---- volumes ------------------------------------------------------------
    def _onSceneNodesChanged(self, caller=None, event=None) -> None:
        self._volumeListTimer.start()  # many nodes arrive at once when a folder loads

    def updateVolumeList(self) -> None:
        """List the scene's scalar volumes, keeping each one's check state (new ones are checked)."""
        listWidget = self.ui.volumeListWidget
        previous = {}
        for row in range(listWidget.count):
            item = listWidget.item(row)
            previous[item.data(qt.Qt.UserRole)] = item.checkState()
        listWidget.clear()
        for node in scalarVolumeNodes(slicer.mrmlScene):
            item = qt.QListWidgetItem(node.GetName())
            item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable | qt.Qt.ItemIsUserCheckable)
            item.setData(qt.Qt.UserRole, node.GetID())
            item.setCheckState(previous.get(node.GetID(), qt.Qt.Checked))
            listWidget.addItem(item)
        self.ui.runButton.enabled = not self._running and listWidget.count > 0

    def checkedVolumeNodes(self) -> List:
        nodes = []
        for row in range(self.ui.volumeListWidget.count):
            item = self.ui.volumeListWidget.item(row)
            node = slicer.mrmlScene.GetNodeByID(item.data(qt.Qt.UserRole))
            if node is not None and item.checkState() == qt.Qt.Checked:
                nodes.append(node)
        return nodes

    def onSelectAllVolumes(self, checked: bool) -> None:
        for row in range(self.ui.volumeListWidget.count):
            self.ui.volumeListWidget.item(row).setCheckState(qt.Qt.Checked if checked else qt.Qt.Unchecked)

    def onLoadFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self, _("Folder of volumes"), self._lastFolder("input"))
        if not folder:
            return
        saveValue("inputFolder", folder)
        with slicer.util.WaitCursor():
            nodes, errors = loadVolumeFolder(slicer.mrmlScene, folder, slicer.modules.volumes.logic())
        self.updateVolumeList()
        self.ui.statusLabel.text = _("Loaded {count} volumes from {folder}").format(count=len(nodes), folder=folder)
        if errors:
            details = "\n".join(f"{Path(e.path).name}: {e.message}" for e in errors)
            slicer.util.warningDisplay(
                _("{count} files of the folder were not loaded.").format(count=len(errors)),
                detailedText=details, windowTitle=_("Pancakes"))

    @staticmethod
    def _lastFolder(kind: str) -> str:
        return str(savedValue(f"{kind}Folder") or "")

    # ---- browsing -----------------------------------------------------------
    def _currentProtocol(self) -> int:
        row = self.ui.protocolListWidget.currentRow
        return row if row >= 0 else self.logic.currentProtocol

    def _updateResults(self) -> None:
        """Protocol thumbnails and the volume table for what the logic has now."""
        results = self.logic.finishedResults()
        self.ui.keepButton.enabled = bool(results)
        self.ui.exportButton.enabled = bool(results)
        listWidget = self.ui.protocolListWidget
        listWidget.blockSignals(True)
        listWidget.clear()
        if results:
            first = results[0]
            volumeNode = slicer.mrmlScene.GetNodeByID(first.volumeID)
            thumbnails = protocol_thumbnails(imageFromVolumeNode(volumeNode), dict(enumerate(first.labels)),
                                             first.M, first.K, self.logic.settings.axis, THUMBNAIL_SIZE)
            for m, rgb in thumbnails.items():
                qimage = qt.QImage()
                slicer.qMRMLUtils().vtkImageDataToQImage(thumbnailImageData(rgb), qimage)
                item = qt.QListWidgetItem(qt.QIcon(qt.QPixmap.fromImage(qimage)), f"P{m + 1:02d}")
                item.setToolTip(protocols.protocol_name(first.M, first.K, m))
                listWidget.addItem(item)
            listWidget.setCurrentRow(min(self.logic.currentProtocol, first.M - 1))
        listWidget.blockSignals(False)
        self._updateVolumeTable()

    def onProtocolSelected(self, row: int) -> None:
        if row < 0 or self.logic.settings is None or self._running:
            return
        with slicer.util.WaitCursor():
            self.logic.setCurrentProtocol(row)
        self._updateVolumeTable()

    def _segmentationFor(self, result, m: int):
        """The kept segmentation of protocol m when there is one (it may be edited), else the preview."""
        kept = findKeptNode(slicer.mrmlScene, result.volumeID, result.M, result.K, m)
        return kept if kept is not None else self.logic.previewNode(result.volumeID)

    def _updateVolumeTable(self) -> None:
        table = self.ui.labelTableWidget
        table.blockSignals(True)
        table.clear()
        table.setRowCount(0)
        results = self.logic.finishedResults()
        if results:
            m = self._currentProtocol()
            M, K = results[0].M, results[0].K
            rows = []
            for result in results:
                node = self._segmentationFor(result, m)
                if node is not None:
                    rows += segmentationVolumeRows(node, result.volumeName)
            header, lines = volumeTable(rows)
            names = self.logic.labelNamesFor(M, K, m)
            table.setColumnCount(len(header) + 1)
            table.setHorizontalHeaderLabels([_("Segment"), _("Name")] + [f"{s} (mm³)" for s in header[1:]])
            table.setRowCount(len(lines))
            for r, line in enumerate(lines):
                k = r
                segmentItem = qt.QTableWidgetItem(line[0])
                pixmap = qt.QPixmap(12, 12)
                pixmap.fill(qt.QColor(*protocols.colour(M, K, m, k)))
                segmentItem.setIcon(qt.QIcon(pixmap))
                segmentItem.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
                table.setItem(r, 0, segmentItem)
                nameItem = qt.QTableWidgetItem(names.get(line[0], protocols.segment_name(M, K, m, k)))
                nameItem.setData(qt.Qt.UserRole, k)
                table.setItem(r, 1, nameItem)  # editable: renaming applies to every scan
                for c, value in enumerate(line[1:], start=2):
                    valueItem = qt.QTableWidgetItem(f"{value:.1f}")
                    valueItem.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
                    valueItem.setTextAlignment(int(qt.Qt.AlignRight | qt.Qt.AlignVCenter))
                    table.setItem(r, c, valueItem)
            table.resizeColumnsToContents()
        table.blockSignals(False)

    def onLabelItemChanged(self, item) -> None:
        if item.column() != 1 or self.logic.settings is None:
            return
        name = item.text().strip()
        if not name:
            self._updateVolumeTable()  # an empty name is refused: show the old one again
            return
        self.logic.renameLabel(self._currentProtocol(), int(item.data(qt.Qt.UserRole)), name)

    # ---- keep and export ---------------------------------------------------
    def onKeep(self) -> None:
        m = self._currentProtocol()
        with slicer.util.WaitCursor():
            kept = keepProtocol(self.logic, m)
        self.ui.statusLabel.text = _("Protocol {protocol} kept as {count} editable segmentations").format(
            protocol=m + 1, count=len(kept))
        self._updateVolumeTable()

    def onExport(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self, _("Export to folder"), self._lastFolder("export"))
        if not folder:
            return
        saveValue("exportFolder", folder)
        try:
            with slicer.util.WaitCursor():
                report = exportProtocol(self.logic, self._currentProtocol(), folder)
        except OSError as error:
            slicer.util.errorDisplay(_("Export failed: {error}").format(error=error), windowTitle=_("Pancakes"))
            return
        self._updateVolumeTable()
        slicer.util.infoDisplay(
            _("Wrote {count} segmentations and {csv}").format(count=len(report.files), csv=report.volumesCsv),
            windowTitle=_("Pancakes"))
        self._offerDicomSeg(folder)

    def _offerDicomSeg(self, folder: str) -> None:
        """Volumes loaded from DICOM can also go out as DICOM SEG (ExportDicom.py), for PACS and viewers."""
        m = self._currentProtocol()
        count = len(dicomVolumesOfProtocol(self.logic, m))
        if not count or not slicer.util.confirmYesNoDisplay(
                _("{count} of these volumes were loaded from DICOM. Also write them as DICOM SEG?").format(
                    count=count), windowTitle=_("Pancakes")):
            return
        if not highdicomInstalled():
            if not slicer.util.confirmOkCancelDisplay(_("Writing DICOM SEG needs the highdicom Python package. "
                                                        "Install it now?"), windowTitle=_("Pancakes")):
                return
            with slicer.util.WaitCursor():
                slicer.util.pip_install("highdicom")
        try:
            with slicer.util.WaitCursor():
                report = exportProtocolDicomSeg(self.logic, m, folder)
        except Exception as error:  # highdicom refuses sources it cannot reference: say why, keep the panel
            slicer.util.errorDisplay(_("DICOM SEG export failed: {error}").format(error=error),
                                     windowTitle=_("Pancakes"))
            return
        slicer.util.infoDisplay(_("Wrote {count} DICOM SEG files").format(count=len(report.files)),
                                windowTitle=_("Pancakes"))

    # ---- refine ---------------------------------------------------------------
    def onRefineSegmentationChanged(self, segmentationNode=None) -> None:
        """A segmentation picked for refinement: select its volume (kept ones remember theirs)."""
        volumeNode = None
        if segmentationNode is not None:
            volumeNode = sourceVolumeNode(segmentationNode)
            if volumeNode is None:  # any other segmentation: its Segment Editor source volume, if set
                role = segmentationNode.GetReferenceImageGeometryReferenceRole()
                volumeNode = segmentationNode.GetNodeReference(role)
        if volumeNode is not None:
            self.ui.refineVolumeSelector.setCurrentNode(volumeNode)
        self.updateRefineTarget()

    def updateRefineTarget(self, _value=None) -> None:
        """Tell the refine panel what the selectors show; nothing while any of the three is missing."""
        segmentationNode = self.ui.refineSegmentSelector.currentNode()
        segmentId = self.ui.refineSegmentSelector.currentSegmentID()
        volumeNode = self.ui.refineVolumeSelector.currentNode()
        if (segmentationNode is None or volumeNode is None or not segmentId
                or segmentationNode.GetSegmentation().GetSegment(segmentId) is None):
            self.refinePanel.setTarget(None, None, None)
        else:
            self.refinePanel.setTarget(segmentationNode, segmentId, volumeNode)

    # ---- scene ----------------------------------------------------------------
    def onSceneClosed(self, caller=None, event=None) -> None:
        self.refinePanel.setTarget(None, None, None)
        self.logic.clear()
        self.setParameterNode(createParameterNode(slicer.mrmlScene))
        self.updateVolumeList()
        self._updateResults()
