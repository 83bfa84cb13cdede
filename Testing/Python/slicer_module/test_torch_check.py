"""The panel's PyTorch check (issue 17, defects 2 and 4): missing, broken and too old read as messages."""
from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib import TorchCheck  # noqa: E402


def test_versions():
    assert TorchCheck.parseVersion("2.8.0+cu128") == (2, 8)
    assert TorchCheck.versionProblem("2.8.0") is None
    assert TorchCheck.versionProblem("2.13.0+cpu") is None
    assert TorchCheck.versionProblem("10.0") is None
    assert "too old" in TorchCheck.versionProblem("2.7.1")
    assert "too old" in TorchCheck.versionProblem("1.13.1")
    assert "unreadable" in TorchCheck.versionProblem("")


def test_installed_torch_is_fine():
    assert TorchCheck.torchProblem() is None


def test_missing_torch(monkeypatch):
    monkeypatch.setattr(TorchCheck.importlib.util, "find_spec", lambda name: None)
    assert "not installed" in TorchCheck.torchProblem()


def test_broken_and_old_torch(monkeypatch):
    monkeypatch.setattr(TorchCheck.importlib.util, "find_spec", lambda name: object())  # installed...
    monkeypatch.setitem(sys.modules, "torch", None)  # ...but `import torch` raises ImportError
    assert "cannot be imported" in TorchCheck.torchProblem()
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.6.0"))
    assert "2.6.0 is too old" in TorchCheck.torchProblem()


def test_requirement_matches_the_minimum():
    assert TorchCheck.TORCH_REQUIREMENT == ">=" + ".".join(map(str, TorchCheck.MINIMUM_TORCH))
