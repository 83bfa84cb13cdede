"""The house rules on imports: the core has no cycles, the runtime and the Slicer library import no
training or evaluation code, and the Slicer-side parameters load without torch."""
from __future__ import annotations

import subprocess
import sys

from import_graph import (CORE_DIR, LIB_DIR, MODULE_DIR, core_graph, core_modules, find_cycle, imported_names,
                          is_runtime)


def test_the_cycle_finder_finds_a_cycle():
    """So that an empty answer below means something."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_relative_lazy_and_submodule_imports():
    graph = core_graph()
    assert "pancakes.predictor" in graph["pancakes.engine"]  # module level, relative
    assert "pancakes.volume" in graph["pancakes.predictor"]  # from . import volume
    assert "pancakes.engine" in graph["pancakes.cli"]  # inside a function


def test_core_has_no_import_cycles():
    cycle = find_cycle(core_graph())
    assert not cycle, " -> ".join(cycle)


def test_runtime_imports_no_training_or_evaluation_code():
    graph = core_graph()
    runtime = [name for name in graph if is_runtime(name)]
    assert "pancakes.engine" in runtime and "pancakes.refine.refiner" in runtime
    assert "pancakes.training.train" not in runtime and "pancakes.evaluation.metrics" not in runtime
    bad = {name: sorted(t for t in graph[name] if not is_runtime(t)) for name in runtime}
    assert not {k: v for k, v in bad.items() if v}


def test_slicer_library_imports_no_training_or_evaluation_code():
    files = sorted(LIB_DIR.glob("*.py")) + [MODULE_DIR / "PancakesSegment.py"]
    assert len(files) > 10
    bad = {p.name: [t for t in imported_names(p) if t.startswith("pancakes") and not is_runtime(t)] for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_every_core_module_is_in_the_graph():
    assert set(core_modules()) == {n for n in core_graph()}
    assert len(list(CORE_DIR.rglob("*.py"))) == len(core_modules())


def test_slicer_parameters_and_the_contract_load_without_torch():
    """The module must show its panel (and offer to install PyTorch) before torch exists."""
    code = (f"import sys; sys.path.insert(0, {str(MODULE_DIR)!r})\n"
            "import PancakesSegmentLib.Parameters, pancakes.contract\n"
            "from PancakesSegmentLib.Parameters import RunSettings\n"
            "RunSettings(protocols=4, device='GPU').validated()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_contract_alone_imports_nothing_heavy():
    """The CLI parses its arguments with the contract before any model or image library loads."""
    code = (f"import sys; sys.path.insert(0, {str(MODULE_DIR)!r})\n"
            "import pancakes.contract\n"
            "heavy = [m for m in ('torch', 'numpy', 'SimpleITK', 'scipy') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
