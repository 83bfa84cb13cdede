"""Static checks of the Slicer module: it compiles, its widget names exist in the .ui,
the logic stays free of Qt, and CMake ships every file. No Slicer application needed."""
from __future__ import annotations

import ast
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[3] / "PancakesSegment"
LIB_DIR = MODULE_DIR / "PancakesSegmentLib"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "PancakesSegment.ui"
QT_LIB_FILES = ("Widget.py", "WidgetRun.py", "RefineWidget.py", "ParameterNode.py", "PanelTest.py")  # the panel; nothing else may use Qt
GUI_FILES = [MODULE_DIR / "PancakesSegment.py"] + [LIB_DIR / name for name in QT_LIB_FILES]
LIB_FILES = sorted(LIB_DIR.glob("*.py"))
INTERACTIVE = {"QPushButton", "QSpinBox", "QComboBox", "QListWidget", "QTableWidget", "QCheckBox",
               "QProgressBar", "qMRMLNodeComboBox",
               "qMRMLSegmentSelectorWidget"}  # containers (collapsible buttons) need no wiring


def uiWidgets():
    return {w.get("name"): w.get("class") for w in ET.parse(UI_FILE).getroot().iter("widget")}


def uiLayouts():
    """Named layouts of the .ui: the code may add widgets to them (childWidgetVariables lists them too)."""
    return {layout.get("name") for layout in ET.parse(UI_FILE).getroot().iter("layout")}


def uiNamesUsed():
    used = set()
    for path in GUI_FILES:
        used |= set(re.findall(r"\bself\.ui\.(\w+)", path.read_text(encoding="utf-8")))
    return used


@pytest.mark.parametrize("path", GUI_FILES + LIB_FILES, ids=lambda p: p.name)
def test_module_files_compile(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_every_widget_the_code_uses_is_in_the_ui_file():
    used = uiNamesUsed()
    assert used, "the widget code refers to no self.ui names: the check would be empty"
    missing = used - set(uiWidgets()) - uiLayouts()
    assert not missing, f"not in {UI_FILE.name}: {sorted(missing)}"


def test_every_interactive_widget_of_the_ui_is_wired():
    unused = {name for name, cls in uiWidgets().items() if cls in INTERACTIVE} - uiNamesUsed()
    assert not unused, f"widgets in the .ui that no code uses: {sorted(unused)}"


def test_ui_defaults_match_the_logic_defaults():
    import sys

    sys.path.insert(0, str(MODULE_DIR))
    from PancakesSegmentLib.Parameters import DEFAULT_LABELS, DEFAULT_PROTOCOLS

    root = ET.parse(UI_FILE).getroot()

    def value(name):
        widget = next(w for w in root.iter("widget") if w.get("name") == name)
        return int(next(p for p in widget.iter("property") if p.get("name") == "value").find("number").text)

    assert (value("protocolsSpinBox"), value("labelsSpinBox")) == (DEFAULT_PROTOCOLS, DEFAULT_LABELS) == (8, 20)


def guardedImports(tree) -> set:
    """Import nodes inside ``try: ... except ImportError:`` (they fall back when the module is missing)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers):
            guarded |= {n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return guarded


@pytest.mark.parametrize("path", [p for p in LIB_FILES if p.name not in QT_LIB_FILES], ids=lambda p: p.name)
def test_logic_files_use_no_gui(path):
    """Only the panel (QT_LIB_FILES) may use Qt, CTK or the Slicer application; the rest runs under plain pytest."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    banned_modules = {"qt", "ctk", "slicer.util", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
                      "slicer.i18n", "PyTorchUtils"}
    guarded = guardedImports(tree)
    for node in ast.walk(tree):
        if node in guarded and isinstance(node, ast.ImportFrom) and node.module == "slicer.parameterNodeWrapper":
            continue  # Parameters.slicerParameterPack: Slicer's decorator where it exists, a dataclass elsewhere
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        assert not set(names) & banned_modules, f"{path.name}:{node.lineno} imports {names}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
            assert node.attr not in {"app", "mrmlScene", "util", "modules"}, f"{path.name}:{node.lineno} uses slicer.{node.attr}"


def test_cmake_ships_every_module_file_and_resource():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set(re.findall(r"\$\{MODULE_NAME\}(Lib/\w+\.py|\.py)", text))
    expected = {"Lib/" + p.name for p in LIB_FILES} | {".py"}
    assert listed == expected
    for resource in ("Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui"):
        assert resource in text
    assert "pancakes/*.py" in text and "GLOB_RECURSE" in text
    assert "Resources/model_weights" in text
    assert "${MODEL_WEIGHTS_SOURCE_DIR}/*.pt" in text  # pancakes.pt and refine.pt alike
    top = (MODULE_DIR.parent / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY \"Segmentation\"", "EXTENSION_CONTRIBUTORS",
                "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                "EXTENSION_DEPENDS \"PyTorch\"", "add_subdirectory(PancakesSegment)"):
        assert key in top, key


def test_icon_is_a_128_pixel_png():
    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / "PancakesSegment.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def test_module_file_stays_thin():
    lines = (MODULE_DIR / "PancakesSegment.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 150


def test_library_imports_without_torch():
    """Slicer must load the module before PyTorch is installed, so that it can offer to install it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"  # makes `import torch` fail
            f"sys.path.insert(0, {str(MODULE_DIR)!r})\n"
            "import PancakesSegmentLib, PancakesSegmentLib.SelfTest\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
