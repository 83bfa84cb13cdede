"""PancakesSegment: consistent multi-protocol segmentation of a collection of volumes (Slicer module).

The work is in PancakesSegmentLib (MRML logic, no Qt; Widget.py is the panel)
and in the pure-Python ``pancakes`` package beside it.
"""
import sys

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class PancakesSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Pancakes Segment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Volumes", "Markups", "SubjectHierarchy"]
        self.parent.contributors = ["PancakesSegment contributors"]
        self.parent.helpText = _(
            "Segments a collection of volumes in several ways at once, without labelled examples "
            "(Pancakes). Every protocol's labels line up across the volumes: label 7 of protocol 3 has "
            "the same segment ID, name and colour in every scan. Pick the protocol that suits the "
            "question, keep it as editable segmentations, rename labels once for the whole collection, "
            "and export .seg.nrrd files with a table of label volumes (and DICOM SEG for volumes loaded "
            "from DICOM). "
            "PyTorch comes from the PyTorch extension.")
        self.parent.acknowledgementText = _(
            "Based on 'Pancakes: Consistent Multi-Protocol Image Segmentation Across Biomedical Domains'. "
            "The module layout follows KitwareMedical/SlicerNNUnet.")
        # "Sample Data -> Pancakes": the bundled volumes, registered once the SampleData module exists.
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Register the bundled sample volumes with the SampleData module (offline: file URIs)."""
    try:
        import SampleData
    except ImportError:  # a Slicer built without SampleData: nothing to register with
        return
    from PancakesSegmentLib.SampleDataSources import sampleDataSources

    for source in sampleDataSources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source)


class PancakesSegmentWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.widget = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        from PancakesSegmentLib.SegmentationLogic import SegmentationLogic
        from PancakesSegmentLib.Widget import Widget

        # The widget receives its logic (SlicerNNUnet's pattern): it relies on LogicProtocol only.
        self.widget = Widget(SegmentationLogic(slicer.mrmlScene))
        self.layout.addWidget(self.widget)

    def cleanup(self) -> None:
        if self.widget is not None:
            self.widget.cleanup()

    def onReload(self) -> None:
        """Forget the library and the core too, so that edits to any file take effect on re-import.

        Reloading module by module would leave some holding the old versions of others.
        """
        for name in list(sys.modules):
            if name.split(".")[0] in ("PancakesSegmentLib", "pancakes"):
                del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)


class PancakesSegmentLogic(ScriptedLoadableModuleLogic):
    """Entry point for scripts: ``PancakesSegmentLogic().segmentationLogic()`` runs on the main scene."""

    def segmentationLogic(self, modelPath=None):
        from PancakesSegmentLib.SegmentationLogic import SegmentationLogic

        return SegmentationLogic(slicer.mrmlScene, modelPath)


class PancakesSegmentTest(ScriptedLoadableModuleTest):
    """The same scenario as Testing/Python/test_slicer_selftest.py, on Slicer's own scene."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SyntheticCollection()
        self.setUp()
        self.test_Panel()

    def _requireTorch(self):
        """Fail, not pass silently, without a usable PyTorch (missing, broken or too old)."""
        from PancakesSegmentLib.TorchCheck import torchProblem

        problem = torchProblem()
        if problem:
            self.fail(problem)

    def test_SyntheticCollection(self):
        import tempfile

        from PancakesSegmentLib.SelfTest import runScenario

        self._requireTorch()
        folder = tempfile.mkdtemp(prefix="PancakesSegmentSelfTest", dir=slicer.app.temporaryPath)
        runScenario(slicer.mrmlScene, folder, log=self.delayDisplay)

    def test_Panel(self):
        """Build the panel, run it on a bundled sample and set a refine target, with no Python errors."""
        from PancakesSegmentLib.PanelTest import runPanelSmokeTest

        self._requireTorch()
        runPanelSmokeTest(log=self.delayDisplay)
