"""Robust z-scores (median, MAD) flag the odd subject out, per protocol and label, and plot as PNG."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pancakes.report_stats import outliers, protocol_plot, robust_z, volume_table


def test_robust_z_is_not_fooled_by_the_outlier_itself():
    values = [100, 102, 98, 101, 99, 100, 5000]
    z = robust_z(values)
    assert abs(z[-1]) > 3.5 and np.all(np.abs(z[:-1]) < 3.5)
    # The classical z-score of the same outlier stays below the limit: one wild value inflates the SD.
    assert abs((5000 - np.mean(values)) / np.std(values)) < 3.5


def test_zero_mad_falls_back_to_the_mean_absolute_deviation():
    z = robust_z([7, 7, 7, 7, 7, 7, 900])
    assert abs(z[-1]) > 3.5 and np.all(z[:-1] == 0)
    assert np.all(robust_z([7, 7, 7]) == 0) and robust_z([]).size == 0


def test_outliers_per_protocol_and_label_and_the_plot():
    M, K = 2, 3
    done = []
    for i in range(8):
        counts = [[10 + i % 3, 20, 30 + i % 2], [5, 5 + i % 2, 50]]
        if i == 5:
            counts[1][2] = 5000  # subject s5, protocol 2, label 3
        done.append((f"s{i}", {"counts": counts, "voxel_mm3": 2.0}))
    table = volume_table(done, M, K)
    assert table[(1, 2)]["s5"] == 10000.0
    (flag,) = outliers(table)
    assert (flag.m, flag.k, flag.subject) == (1, 2, "s5") and flag.z > 3.5
    with Image.open(io.BytesIO(protocol_plot(table, 1, M, K, [flag]))) as im:
        assert im.format == "PNG" and im.width >= 600
