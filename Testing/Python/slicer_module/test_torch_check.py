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


def test_bundled_model_files_were_saved_by_the_oldest_supported_torch():
    """A file scripted by a newer torch does not load in 2.8 (Unknown builtin op aten::_upsample_lanczos2d_aa), so
    every shipped file must be re-saved with it (benchmarks/reexport_models.py); refiner run 11 once was not."""
    from pancakes.model_file import load_torchscript

    weights = Path(__file__).resolve().parents[3] / "model_weights"
    for name in ("pancakes.pt", "refine.pt"):
        _, meta = load_torchscript(weights / name)
        saved_with = TorchCheck.parseVersion(str(meta.get("exported_with_torch")))
        assert saved_with == TorchCheck.MINIMUM_TORCH, f"{name}: saved with torch {meta.get('exported_with_torch')}"
