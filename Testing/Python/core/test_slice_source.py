"""Integer volumes are normalised batch by batch (slice_source.py) with exactly the values of the
whole-volume path, so streaming changes memory, not results."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.preprocessing import finite_float, normalise
from pancakes.slice_source import NormalisedSlices, streamable


def int_volume(shape, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 1500, shape).astype(np.int16)
    arr[: shape[0] // 2] += 300
    return sitk.GetImageFromArray(arr)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_batches_equal_the_whole_volume_normalised(axis):
    image = int_volume((130, 130, 131))  # over 2 M voxels: the percentiles come from a strided sample
    whole = np.moveaxis(normalise(finite_float(sitk.GetArrayViewFromImage(image), "v"), "v"), axis, 0)
    slices = NormalisedSlices(image, axis, "v")
    assert slices.shape == whole.shape
    for start in range(0, slices.shape[0], 7):
        batch = slices[start : start + 7]
        assert batch.dtype == np.float32
        np.testing.assert_array_equal(batch, whole[start : start + 7])


def test_only_integer_volumes_stream():
    assert streamable(int_volume((2, 3, 4)))
    assert not streamable(sitk.Image(4, 4, 4, sitk.sitkFloat32))


def test_an_integer_volume_and_its_float_copy_get_the_same_labels(random_model):
    image = int_volume((12, 40, 36), seed=3)
    image.SetSpacing((0.8, 0.9, 2.0))
    as_float = sitk.Cast(image, sitk.sitkFloat32)  # goes the whole-volume way
    for a, b in zip(random_model.segment_volume(image, 2, 4), random_model.segment_volume(as_float, 2, 4)):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


def test_an_lps_volume_is_sliced_without_a_reoriented_copy():
    # DICOMOrient copies even when no axis moves: a CT held twice while it is segmented.
    from pancakes.volume import oriented_lps

    lps = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    assert oriented_lps(lps) is lps
    ras = sitk.Image(lps)
    ras.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    turned = oriented_lps(ras)
    assert turned is not ras and np.allclose(turned.GetDirection(), np.eye(3).ravel())
    assert np.array_equal(sitk.GetArrayViewFromImage(turned), sitk.GetArrayViewFromImage(ras)[:, ::-1, ::-1])
