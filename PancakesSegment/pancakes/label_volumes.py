"""Per-label voxel counts and volumes, and the volumes.csv that collects them.

Usage::

    counts = label_counts(labels_sitk, K)                 # [K] voxels per label 1..K
    rows = volume_rows("brain1", counts_per_protocol, voxel_mm3, M, K)
    write_volumes_csv("out/volumes.csv", rows)

volumes.csv has one row per subject x protocol x label, zero counts included,
so tables from different runs with the same (M, K) line up row for row. For a
2D input (stored as a one-slice volume with a 1 mm slice spacing unless the
file says otherwise) volume_mm3 is its area in mm^2 times that spacing.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Union

import numpy as np
import SimpleITK as sitk

from . import protocols
from .segio import write_text

COUNT_CHUNK = 1 << 22  # voxels counted at once (a 32 MB int64 copy inside bincount)
COLUMNS = ("subject", "protocol", "label", "segment_id", "voxel_count", "volume_mm3")


def label_counts(labels: sitk.Image, K: int) -> List[int]:
    """Voxels of each engine label 1..K in one protocol's label volume -> list of K ints."""
    arr = np.asarray(sitk.GetArrayViewFromImage(labels)).reshape(-1)  # ``labels`` outlives the view
    # In chunks: bincount casts its input to int64, which for a whole 512x512x400 label volume was an
    # 800 MB copy, the largest single allocation of a CT's batch run (bench_large_volume.py).
    counts = np.zeros(K + 1, np.int64)
    for start in range(0, arr.size, COUNT_CHUNK):
        part = np.bincount(arr[start : start + COUNT_CHUNK], minlength=K + 1)
        if part.size > counts.size:
            counts = np.pad(counts, (0, part.size - counts.size))
        counts[: part.size] += part
    if counts.size > K + 1:
        raise ValueError(f"label volume holds values above K={K}")
    return [int(c) for c in counts[1:]]


def voxel_volume_mm3(image: sitk.Image) -> float:
    """Volume of one voxel: |det| of its edge vectors, direction x diag(spacing).

    That is the product of the spacings when the direction is orthonormal; a sheared grid
    (e.g. a gantry-tilted CT kept as NRRD/MHA) has smaller voxels than the plain product says.
    """
    n = image.GetDimension()
    direction = np.array(image.GetDirection(), dtype=float).reshape(n, n)
    return float(abs(np.linalg.det(direction)) * np.prod(image.GetSpacing()))


def volume_rows(subject: str, counts: Sequence[Sequence[int]], voxel_mm3: float, M: int, K: int) -> List[Dict]:
    """counts: [M][K] voxel counts of one subject -> M*K rows (protocol, label 1-based)."""
    if len(counts) != M or any(len(c) != K for c in counts):
        raise ValueError(f"counts must be {M} lists of {K} values")
    rows = []
    for m in range(M):
        for k in range(K):
            n = int(counts[m][k])
            rows.append({
                "subject": subject,
                "protocol": m + 1,
                "label": k + 1,
                "segment_id": protocols.segment_id(M, K, m, k),
                "voxel_count": n,
                "volume_mm3": n * voxel_mm3,
            })
    return rows


def volumes_csv_text(rows: Iterable[Dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_volumes_csv(path: Union[str, Path], rows: Iterable[Dict]) -> Path:
    """Write volumes.csv atomically (UTF-8, so any subject name survives)."""
    return write_text(path, volumes_csv_text(rows))


def read_volumes_csv(path: Union[str, Path]) -> List[Dict]:
    """Rows of a volumes.csv with numbers parsed back."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in ("protocol", "label", "voxel_count"):
            r[key] = int(r[key])
        r["volume_mm3"] = float(r["volume_mm3"])
    return rows
