"""`pancakes segment` end to end on volumes of clinical size, in a subprocess.

A numpy view of a freed SimpleITK temporary segfaulted on any volume over ~32 MB
(the allocator returns such blocks to the system at once); the small test volumes
elsewhere only read freed memory, which went unnoticed. A subprocess turns a native
crash into a failed assertion instead of a dead pytest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pancakes.label_volumes import read_volumes_csv

ROOT = Path(__file__).resolve().parents[2]


def ct_like(shape_zyx, seed: int = 0) -> np.ndarray:
    """int16 HU-like volume: air, an elliptic body of soft tissue, a brighter organ and a spine."""
    rng = np.random.default_rng(seed)
    z, y, x = shape_zyx
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.42 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 < 1
    organ = ((yy - 0.45 * y) / (0.12 * y)) ** 2 + ((xx - 0.6 * x) / (0.15 * x)) ** 2 < 1
    spine = ((yy - 0.75 * y) / (0.05 * y)) ** 2 + ((xx - x / 2) / (0.05 * x)) ** 2 < 1
    plane = np.full((y, x), -1000, np.int16)
    plane[body], plane[organ], plane[spine] = 40, 120, 700
    vol = np.broadcast_to(plane, (z, y, x)).copy()
    vol += rng.integers(-20, 21, size=(1, y, x), dtype=np.int16)  # one noise plane, cheap at this size
    return vol


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "PancakesSegment") + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def test_clinical_size_ct_and_mr_end_to_end(tmp_path, random_model_path):
    ct = sitk.GetImageFromArray(ct_like((200, 512, 512)))  # 100 MB int16, the size that crashed
    ct.SetSpacing((0.7, 0.7, 2.0))
    sitk.WriteImage(ct, str(tmp_path / "ct.mha"))
    mr_arr = np.random.default_rng(1).random((256, 256, 200), dtype=np.float32) * 500  # 50 MB float32
    mr = sitk.GetImageFromArray(mr_arr)
    mr.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # not LPS: the gallery has to reorient it
    sitk.WriteImage(mr, str(tmp_path / "mr.mha"))
    del ct, mr, mr_arr
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pancakes.cli", "segment", str(tmp_path / "ct.mha"),
                           str(tmp_path / "mr.mha"), "-o", str(out), "--model", str(random_model_path),
                           "-M", "2", "-K", "3", "--device", "cpu", "--batch-size", "32", "-q"],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    for name, size in (("ct", [512, 512, 200]), ("mr", [200, 256, 256])):
        marker = json.loads((out / name / ".complete.json").read_text(encoding="utf-8"))
        assert marker["size"] == size
    rows = read_volumes_csv(out / "volumes.csv")
    assert {r["subject"] for r in rows} == {"ct", "mr"}
    assert sum(r["voxel_count"] for r in rows if r["subject"] == "ct" and r["protocol"] == 1) == 512 * 512 * 200
    assert (out / "gallery.png").is_file() and (out / "failures.csv").is_file()
