"""The panel receives its logic, typed as a Protocol; SegmentationLogic provides it; settings are one pack."""
from __future__ import annotations

import ast
import dataclasses
import sys
import typing
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)

LIB_DIR = Path(__file__).resolve().parents[3] / "PancakesSegment" / "PancakesSegmentLib"
sys.path.insert(0, str(LIB_DIR.parent))
from PancakesSegmentLib.LogicProtocol import SegmentationLogicProtocol  # noqa: E402
from PancakesSegmentLib.Parameters import RunSettings  # noqa: E402
from PancakesSegmentLib.SegmentationLogic import SegmentationLogic  # noqa: E402


def protocolMembers():
    methods = {n for n, v in vars(SegmentationLogicProtocol).items() if callable(v) and not n.startswith("_")}
    return methods, set(typing.get_type_hints(SegmentationLogicProtocol))


def test_segmentation_logic_provides_what_the_panel_needs():
    logic = SegmentationLogic(slicer.vtkMRMLScene())
    methods, attributes = protocolMembers()
    assert {"run", "redecode", "clear"} <= methods and {"results", "settings", "currentProtocol"} <= attributes
    assert all(callable(getattr(logic, name, None)) for name in methods)
    assert all(hasattr(logic, name) for name in attributes)


def test_the_panel_uses_only_the_protocol():
    """Every logic member Widget.py and WidgetRun.py use is in the protocol, and they build no logic."""
    methods, attributes = protocolMembers()
    used = set()
    for name in ("Widget.py", "WidgetRun.py"):
        tree = ast.parse((LIB_DIR / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "logic" and isinstance(node.value.value, ast.Name)):
                used.add(node.attr)
            assert not (isinstance(node, ast.Name) and node.id == "SegmentationLogic"), f"{name} builds its logic"
    assert used and used <= methods | attributes, sorted(used - methods - attributes)


def test_clear_forgets_results_but_keeps_the_model():
    logic = SegmentationLogic(slicer.vtkMRMLScene())
    logic.model = object()
    logic.results["vtkMRMLScalarVolumeNode1"] = object()
    logic.settings, logic.currentProtocol = RunSettings(), 3
    logic.clear()
    assert logic.results == {} and logic.settings is None and logic.currentProtocol == 0 and logic.model is not None


def test_run_settings_outside_slicer_are_a_dataclass_with_the_contract_defaults():
    from pancakes import contract

    fields = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    assert fields == {"protocols": contract.DEFAULT_PROTOCOLS, "labels": contract.DEFAULT_LABELS,
                      "device": contract.DEFAULT_DEVICE, "axis": contract.DEFAULT_AXIS, "adapt": True,
                      "coarse": True, "superpixels": True}
    checked = RunSettings(4, 6, "GPU", "coronal", False).validated()
    assert checked == RunSettings(4, 6, "cuda", "coronal", False)
