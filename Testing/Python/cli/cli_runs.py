"""What the command-line tests share: running ``pancakes`` in-process, and reading what it wrote."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.cli import main
from pancakes.label_volumes import read_volumes_csv

M, K = 2, 3
SAMPLE = ["brain1", "brain2", "breast1", "lung1"]


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def checksums(folder):
    sums = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                sums[p] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return sums


def markers(out):
    """{source: (subject folder, marker)} of every complete subject in OUT."""
    found = {}
    for d in out.iterdir():
        if (d / ".complete.json").is_file():
            marker = json.loads((d / ".complete.json").read_text(encoding="utf-8"))
            found[marker["source"]] = (d, marker)
    return found


def no_partial_files(out):
    return not [f for _, _, files in os.walk(out) for f in files if ".partial" in f]


def check_volumes_csv(out, subjects):
    rows = read_volumes_csv(out / "volumes.csv")
    assert len(rows) == len(subjects) * M * K
    for name in subjects:
        img = sitk.ReadImage(str(next((out / name).glob(f"{name}_P01.*"))))
        voxel = float(np.prod(img.GetSpacing()))
        for m in range(1, M + 1):
            mine = [r for r in rows if r["subject"] == name and r["protocol"] == m]
            assert [r["label"] for r in mine] == list(range(1, K + 1))
            assert sum(r["voxel_count"] for r in mine) == int(np.prod(img.GetSize()))
            for r in mine:
                assert r["volume_mm3"] == pytest.approx(r["voxel_count"] * voxel)
    return rows
