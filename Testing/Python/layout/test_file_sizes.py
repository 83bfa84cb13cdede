"""Small files with one purpose: no Python source file of the repository is over 400 lines."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 400


def sourceFiles():
    return [p for p in ROOT.rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]


def test_no_source_file_is_over_400_lines():
    files = sourceFiles()
    assert any(p.name == "engine.py" for p in files) and any(p.name == "Widget.py" for p in files)
    long = {str(p.relative_to(ROOT)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > LIMIT}
    assert not long, f"over {LIMIT} lines: {long}"
