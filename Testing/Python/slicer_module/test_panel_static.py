"""Static checks of the panel's Qt wiring that only a running Slicer could show (issue 17).

Each test reads the source (AST) for one defect of the review against Slicer's sources:
the checks fail on the code before the fix."""
from __future__ import annotations

import ast
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[3] / "PancakesSegment"
LIB_DIR = MODULE_DIR / "PancakesSegmentLib"


def tree(name: str) -> ast.Module:
    return ast.parse((LIB_DIR / name if name != "PancakesSegment.py" else MODULE_DIR / name).read_text(encoding="utf-8"))


def function(module: ast.Module, name: str, cls: str = None) -> ast.FunctionDef:
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef) and cls is not None and node.name == cls:
            return next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == name)
    if cls is None:
        return next(f for f in ast.walk(module) if isinstance(f, ast.FunctionDef) and f.name == name)
    raise LookupError(f"{cls}.{name}")


def dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return dotted(node.func) + "()"
    return "?"


def calls(node) -> list:
    """(dotted name, call node) of every call under ``node``, in source order."""
    found = [(dotted(n.func), n) for n in ast.walk(node) if isinstance(n, ast.Call)]
    return sorted(found, key=lambda c: (c[1].lineno, c[1].col_offset))


def names(node) -> list:
    return [name for name, _ in calls(node)]


# ---- defect 3: the parameter node exists before any signal is connected; refills are silent ----
def test_parameter_node_is_initialised_before_signals_are_connected():
    init = function(tree("Widget.py"), "__init__", "Widget")
    first_connect = min(c.lineno for name, c in calls(init) if name.endswith(".connect"))
    first_fill = min(c.lineno for name, c in calls(init) if name.endswith("_fillDeviceComboBox"))
    assignments = [n.lineno for n in ast.walk(init) if isinstance(n, ast.Assign)
                   and any(dotted(t) == "self._parameterNode" for t in n.targets)]
    assert assignments and min(assignments) < min(first_connect, first_fill)


def test_combo_boxes_are_filled_with_signals_blocked():
    fill = names(function(tree("WidgetRun.py"), "_fillDeviceComboBox", "RunMixin"))
    assert fill.index("box.blockSignals") < fill.index("box.clear") < fill.index("box.addItem")
    assert "self._selectComboData" in fill  # the saved device is shown again, not overwritten
    init = names(function(tree("Widget.py"), "__init__", "Widget"))
    axis = [i for i, n in enumerate(init) if n.startswith("self.ui.axisComboBox.")]
    assert init[axis[0]] == "self.ui.axisComboBox.blockSignals"


# ---- defect 5: "Adapt labels" re-decodes and is saved ----
def test_adapt_and_coarse_checkboxes_redecode_like_protocols_and_labels():
    init = function(tree("Widget.py"), "__init__", "Widget")
    slots = {dotted(c.func): [dotted(a) for a in c.args] for _, c in calls(init)}
    saved = [c.args[0].value for name, c in calls(function(tree("Widget.py"), "onProtocolsOrLabelsChanged"))
             if name == "saveValue"]
    for box, key in (("adaptCheckBox", "adapt"), ("coarseCheckBox", "coarse"), ("superpixelsCheckBox", "superpixels")):
        assert slots.get(f"self.ui.{box}.toggled.connect") == ["self.onProtocolsOrLabelsChanged"]
        assert key in saved


# ---- defect 6: the Add / Remove place buttons show their text ----
def test_place_buttons_show_text_beside_their_icon():
    init = function(tree("RefineWidget.py"), "__init__", "RefinePanel")
    styles = [c for name, c in calls(init) if name.endswith("placeButton().setToolButtonStyle")]
    assert styles and dotted(styles[0].args[0]) == "qt.Qt.ToolButtonTextBesideIcon"


# ---- defect 7 and 4: a failed install is a dialog; the torch requirement is passed and checked ----
def test_torch_install_failure_is_caught_and_the_requirement_is_passed():
    ensure = function(tree("WidgetRun.py"), "ensureTorch", "RunMixin")
    install = [c for name, c in calls(ensure) if name.endswith("installTorch")]
    assert install and any(k.arg == "torchVersionRequirement" and dotted(k.value) == "TORCH_REQUIREMENT"
                           for k in install[0].keywords)
    guarded = [t for t in ast.walk(ensure) if isinstance(t, ast.Try) and install[0] in list(ast.walk(t))
               and any(install[0] in list(ast.walk(s)) for s in t.body)]
    assert guarded, "installTorch is called outside a try"
    handler = guarded[0].handlers[0]
    assert dotted(handler.type) == "Exception" and "slicer.util.errorDisplay" in names(handler)
    assert "torchProblem" in names(ensure)  # an installed but too old torch is refused with a message


# ---- defect 2: the refine section checks torch and reports every failure in its status line ----
def test_refine_prepare_checks_torch_and_catches_everything():
    prepare = function(tree("RefineWidget.py"), "_prepare", "RefinePanel")
    calls_ = names(prepare)
    assert calls_.index("torchProblem") < calls_.index("self.logic.prepare")
    handlers = [h for t in ast.walk(prepare) if isinstance(t, ast.Try) for h in t.handlers]
    assert any(dotted(h.type) == "Exception" for h in handlers)
    assert "torchProblem" in names(function(tree("RefineWidget.py"), "onPointPlaced", "RefinePanel"))


# ---- defect 8: prepared once (a single-shot timer), with the panel's device ----
def test_refine_warm_up_is_deferred_and_uses_the_panel_device():
    panel = tree("RefineWidget.py")
    assert "self._prepare" not in names(function(panel, "setTarget", "RefinePanel"))
    assert "self._prepareTimer.start" in names(function(panel, "setTarget", "RefinePanel"))
    init = function(panel, "__init__", "RefinePanel")
    assert any(name == "self._prepareTimer.setSingleShot" for name in names(init))
    logic = [c for name, c in calls(init) if name == "RefineLogic"]
    assert logic and any(k.arg == "device" for k in logic[0].keywords)
    widget = tree("Widget.py")
    assert "self.refinePanel.setDevice" in names(function(widget, "onDeviceChanged", "Widget"))
    assert "self.refinePanel.setDevice" in names(function(widget, "setParameterNode", "Widget"))


# ---- defect 10: dependencies, the Segment Editor left unbuilt, a clean reload ----
def test_module_declares_the_modules_the_panel_uses():
    init = function(tree("PancakesSegment.py"), "__init__", "PancakesSegment")
    deps = next(n.value for n in ast.walk(init) if isinstance(n, ast.Assign)
                and dotted(n.targets[0]) == "self.parent.dependencies")
    assert {"Segmentations", "Volumes", "Markups", "SubjectHierarchy"} <= {e.value for e in deps.elts}


def test_segment_editor_is_not_built_by_a_refine():
    save = function(tree("RefineWidget.py"), "saveStateInSegmentEditor")
    order = names(save)
    checks = [c for name, c in calls(save) if name.endswith("GetFirstNodeByClass")]
    assert checks and checks[0].args[0].value == "vtkMRMLSegmentEditorNode"
    assert order.index(dotted(checks[0].func)) < next(i for i, n in enumerate(order) if n.endswith("widgetRepresentation"))


def test_cleanup_stops_timers_and_releases_the_models_and_point_lists():
    cleanup = names(function(tree("Widget.py"), "cleanup", "Widget"))
    assert {"timer.stop", "self.refinePanel.cleanup", "self.logic.release", "self.removeObservers"} <= set(cleanup)
    panel = names(function(tree("RefineWidget.py"), "cleanup", "RefinePanel"))
    assert {"self._prepareTimer.stop", "self.logic.release", "slicer.mrmlScene.RemoveNode"} <= set(panel)


# ---- defect 11: "Reload and Test" builds the panel, and fails without torch ----
def test_self_test_builds_the_panel_and_fails_without_torch():
    module = tree("PancakesSegment.py")
    run = names(function(module, "runTest", "PancakesSegmentTest"))
    assert "self.test_Panel" in run and "self.test_SyntheticCollection" in run
    for test in ("test_Panel", "test_SyntheticCollection"):
        assert names(function(module, test, "PancakesSegmentTest"))[0] == "self._requireTorch"
    require = names(function(module, "_requireTorch", "PancakesSegmentTest"))
    assert "torchProblem" in require and "self.fail" in require
    assert "Skipped" not in (MODULE_DIR / "PancakesSegment.py").read_text(encoding="utf-8")
    smoke = names(function(tree("PanelTest.py"), "runPanelSmokeTest"))
    for step in ("torchProblem", "slicer.util.selectModule", "errors.check", "panel.onRun",
                 "panel.ui.refineSegmentSelector.setCurrentSegmentID"):
        assert step in smoke, step


# ---- the refine panel's long steps (seconds on a CT) show their progress and can be stopped ----
def assert_shows_a_progress_dialog(method: str) -> None:
    """RefinePanel.<method> opens a progress dialog, hands its callbacks on, and closes it whatever happened."""
    body = function(tree("RefineWidget.py"), method, "RefinePanel")
    called = names(body)
    assert "slicer.util.createProgressDialog" in called and "self._progressCallbacks" in called
    finally_calls = [name for node in ast.walk(body) if isinstance(node, ast.Try)
                     for stmt in node.finalbody for name in names(stmt)]
    assert "dialog.close" in finally_calls


def test_propagation_shows_the_wait_cursor_and_no_dialog_it_could_not_move():
    # Spreading is one solve (pancakes.refine.propagation): no steps to show, no point at which to stop.
    body = function(tree("RefineWidget.py"), "onPointPlaced", "RefinePanel")
    called = names(body)
    assert "slicer.util.createProgressDialog" not in called and "qt.QApplication.setOverrideCursor" in called
    finally_calls = [name for node in ast.walk(body) if isinstance(node, ast.Try)
                     for stmt in node.finalbody for name in names(stmt)]
    assert "qt.QApplication.restoreOverrideCursor" in finally_calls


def test_picking_a_kept_label_shows_the_protocols_decode_and_can_cancel_it():
    assert_shows_a_progress_dialog("setTarget")
    callbacks = function(tree("RefineWidget.py"), "_progressCallbacks", "RefinePanel")
    assert "slicer.app.processEvents" in names(callbacks)
    assert any(isinstance(node, ast.Attribute) and node.attr == "wasCanceled" for node in ast.walk(callbacks))


def test_the_panel_asks_for_the_reach_it_shows():
    placed = function(tree("RefineWidget.py"), "onPointPlaced", "RefinePanel")
    refine = next(node for name, node in calls(placed) if name == "self.logic.refine")
    assert "reachMm" in [k.arg for k in refine.keywords]
    init = names(function(tree("RefineWidget.py"), "__init__", "RefinePanel"))
    assert "qt.QDoubleSpinBox" in init and "self.propagateCheckBox.toggled.connect" in init


# ---- Slicer's Python lacks scikit-image: offered before a run and before refinement's model loads ----
def test_scikit_image_is_offered_before_the_models_load_and_the_refiner_reloaded_after():
    run = names(function(tree("WidgetRun.py"), "_runAndReport", "RunMixin"))
    assert run.index("self.ensureTorch") < run.index("offerScikitImageInSlicer") < run.index("job")
    assert run.index("offerScikitImageInSlicer") < run.index("self.refinePanel.logic.release")
    prepare = names(function(tree("RefineWidget.py"), "_prepare", "RefinePanel"))
    assert prepare.index("torchProblem") < prepare.index("offerScikitImageInSlicer") \
        < prepare.index("self.logic.release") < prepare.index("self.logic.prepare")
    glue = names(function(tree("WidgetRun.py"), "offerScikitImageInSlicer"))
    assert glue.index("slicer.app.testingEnabled") < glue.index("offerScikitImage")  # no dialog in self-tests
