"""Label counts are taken in chunks (bincount's int64 copy of a whole CT label volume was 800 MB);
the chunking must not change them."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes import label_volumes


def test_chunked_counts_equal_one_bincount(monkeypatch):
    monkeypatch.setattr(label_volumes, "COUNT_CHUNK", 1000)  # many chunks, the last one partial
    arr = np.random.default_rng(0).integers(0, 6, (7, 50, 33)).astype(np.uint8)
    image = sitk.GetImageFromArray(arr)
    assert label_volumes.label_counts(image, 5) == np.bincount(arr.ravel(), minlength=6)[1:].tolist()
    assert label_volumes.label_counts(image, 8) == np.bincount(arr.ravel(), minlength=9)[1:].tolist()
    with pytest.raises(ValueError, match="above K=4"):
        label_volumes.label_counts(image, 4)
