"""Label volumes filled in place batch by batch, and put back in the input's geometry without a copy."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.label_stack import empty_label_images, paste_slices
from pancakes.volume import cut_volume, restack_images, slice_order_permutation


def test_batches_land_in_their_own_slices_of_each_protocol():
    images = empty_label_images(2, depth=5, shape=(3, 4))
    assert [im.GetSize() for im in images] == [(4, 3, 5)] * 2
    rng = np.random.default_rng(0)
    first, second = rng.integers(1, 9, (2, 3, 3, 4), np.uint8), rng.integers(1, 9, (2, 2, 3, 4), np.uint8)
    paste_slices(images, 0, first)
    paste_slices(images, 3, second)
    for m, im in enumerate(images):
        assert np.array_equal(sitk.GetArrayViewFromImage(im), np.concatenate([first[m], second[m]]))


def test_labels_for_the_wrong_number_of_protocols_are_refused():
    with pytest.raises(ValueError, match="do not fit 2 label images"):
        paste_slices(empty_label_images(2, 4, (3, 3)), 0, np.ones((3, 1, 3, 3), np.uint8))


@pytest.mark.parametrize("array_axis", [0, 1, 2])
def test_the_image_permutation_is_numpys_moveaxis(array_axis):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    moved = sitk.PermuteAxes(sitk.GetImageFromArray(arr), slice_order_permutation(array_axis))
    assert np.array_equal(sitk.GetArrayFromImage(moved), np.moveaxis(arr, 0, array_axis))


def test_axial_labels_of_an_lps_volume_are_returned_without_a_copy():
    """The common CT case: the pasted image itself becomes the result (250 MB not copied at 1000 slices)."""
    volume = sitk.GetImageFromArray(np.random.default_rng(1).random((6, 20, 24)).astype(np.float32))
    volume.SetOrigin((3.0, -2.0, 7.5))
    _, slicing = cut_volume(volume, "axial", 16)
    images = empty_label_images(1, 6, (20, 24))
    pasted = images[0]
    result = restack_images(images, slicing)[0]
    assert result is pasted and not images  # taken out of the list as placed
    assert result.GetOrigin() == volume.GetOrigin() and result.GetSpacing() == volume.GetSpacing()


def test_decode_batches_are_small_on_cpu_and_large_on_a_gpu():
    """CPU: 2 slices of M=8, K=20 logits stay in cache; a GPU (no such cache) gets the batch cap."""
    import torch

    from pancakes.preprocessing import plan_fit
    from pancakes.volume import decode_step

    fit = plan_fit((512, 512), 128, (0.7, 0.7))
    assert decode_step(8, 20, fit, torch.device("cpu")) == decode_step(8, 20, fit) == 2
    assert decode_step(8, 20, fit, torch.device("cuda")) == 32
