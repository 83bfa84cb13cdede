"""Slicer-side logic of PancakesSegment: MRML nodes and the pancakes core, no Qt.

Everything here runs in Slicer and under plain pytest with the slicer-core
package; only the panel (Widget.py, WidgetRun.py, RefineWidget.py, ParameterNode.py) needs Slicer's Qt application.
"""
from .Browse import segmentationVolumeRows, thumbnailImageData, volumeTable
from .Collection import LoadError, loadVolumeFolder, scalarVolumeNodes
from .Export import ExportReport, exportProtocol, exportSegmentations
from .Keep import keepProtocol, labelNames, renameLabel
from .Parameters import DEFAULT_LABELS, DEFAULT_PROTOCOLS, RunSettings
from .SegmentationLogic import ProgressInfo, RunReport, SegmentationLogic, VolumeError, isOutOfMemory
from .Segments import fillSegmentation, protocolSegmentIds
from .VolumeConversion import imageFromVolumeNode, updateVolumeNodeFromImage
