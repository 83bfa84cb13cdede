"""The README's attribute access on a plain `import pancakes`, and a closed stdout pipe."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment"), OMP_NUM_THREADS="1")


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                          check=True, timeout=120).stdout.strip()


def test_protocols_and_metrics_are_attributes_of_the_package_without_torch():
    out = python("import sys, pancakes; print(pancakes.protocols.segment_id(8, 20, 2, 6), "
                 "callable(pancakes.metrics.set_dice), 'torch' in sys.modules)")
    assert out == "P03_L07 True False"


def test_unknown_attributes_still_raise():
    assert python("import pancakes\ntry:\n    pancakes.nope\nexcept AttributeError:\n    print('ok')") == "ok"


def test_a_closed_pipe_ends_quietly(random_model_path):
    """`pancakes info --json | head` printed a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pancakes.cli", "info", "--json", "--model", str(random_model_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()  # the reader is gone before the tool writes a byte (it takes seconds to start)
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode == 141
