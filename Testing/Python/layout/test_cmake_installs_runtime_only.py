"""The extension installs the runtime only: the CMake glob of the core leaves training and evaluation out."""
from __future__ import annotations

import re

from import_graph import CORE_DIR, MODULE_DIR, is_runtime, module_name

CMAKE = MODULE_DIR / "CMakeLists.txt"


def cmakeExcludeRegex() -> str:
    text = CMAKE.read_text(encoding="utf-8")
    assert "GLOB_RECURSE PANCAKES_CORE_SCRIPTS" in text and "pancakes/*.py" in text
    found = re.findall(r'list\(FILTER PANCAKES_CORE_SCRIPTS EXCLUDE REGEX "([^"]+)"\)', text)
    assert len(found) == 1, "expected one list(FILTER PANCAKES_CORE_SCRIPTS EXCLUDE REGEX ...)"
    return found[0].replace("\\\\", "\\")  # a CMake string: \\. is the regex \.


def installedCoreFiles():
    """What CMake's glob then filter keep, computed the same way (paths relative to the module folder)."""
    pattern = re.compile(cmakeExcludeRegex())
    paths = [p.relative_to(MODULE_DIR).as_posix() for p in CORE_DIR.rglob("*.py")]
    return [p for p in paths if not pattern.search(p)]


def test_cmake_installs_no_training_or_evaluation_code():
    installed = installedCoreFiles()
    assert not [p for p in installed if not is_runtime(module_name(MODULE_DIR / p))]


def test_cmake_installs_the_whole_runtime():
    installed = set(installedCoreFiles())
    runtime = {p.relative_to(MODULE_DIR).as_posix() for p in CORE_DIR.rglob("*.py") if is_runtime(module_name(p))}
    assert "pancakes/predictor.py" in runtime and "pancakes/refine/refiner.py" in runtime
    assert installed == runtime
