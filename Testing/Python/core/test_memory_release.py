"""Long volumes hand freed heap pages back while they are segmented (pancakes.memory)."""
from __future__ import annotations

import ctypes.util
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes import memory, predictor


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="glibc only")
def test_release_free_memory_calls_malloc_trim_on_glibc():
    assert memory.release_free_memory() is True


def test_segment_trims_between_batches_and_at_the_end(monkeypatch, random_model):
    calls = []
    monkeypatch.setattr(predictor, "release_free_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(predictor, "TRIM_EVERY_BATCHES", 2)
    vol = sitk.GetImageFromArray((np.arange(9 * 40 * 40) % 97).reshape(9, 40, 40).astype(np.int16))
    labels = random_model.predictor(vol, batch_size=2).segment(2, 3)
    assert len(labels) == 2
    # 9 slices in batches of 2: 5 batches, trimmed after batches 2 and 4, and once after the loop.
    assert len(calls) == 3
