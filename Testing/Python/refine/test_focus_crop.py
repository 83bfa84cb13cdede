"""The focus crop (pancakes.refine.focus_crop): where it lies, and the second pass the Refiner makes there."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.refine.focus_crop import FOCUS_MARGIN, focus_box, shift_clicks
from pancakes.refine.refiner import Refiner

torch.set_num_threads(1)


def _mask(shape, rows, cols):
    m = np.zeros(shape, bool)
    m[rows, cols] = True
    return m


def test_no_crop_without_mask_and_clicks_or_on_images_the_input_already_holds():
    assert focus_box(np.zeros((512, 512), bool), [], 128) is None
    small = _mask((128, 128), slice(40, 50), slice(40, 50))
    assert focus_box(small, [(45, 45)], 128) is None
    # 150 pixels: a 128-pixel crop would be most of it, and the whole pass sees it nearly at its own size.
    assert focus_box(_mask((150, 150), slice(40, 50), slice(40, 50)), [], 128) is None


def test_a_small_label_gets_a_crop_of_the_input_size_around_it_and_the_clicks():
    mask = _mask((512, 400), slice(200, 210), slice(100, 112))
    rows, cols = focus_box(mask, [(230.4, 90.0)], 128)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (128, 128)
    assert rows.start <= 200 and rows.stop > 230 and cols.start <= 90 and cols.stop > 111
    # Centred on the box of the mask and the click: rows 200..230.4, columns 90..111.
    assert abs((rows.start + rows.stop) / 2 - 215.7) <= 1 and abs((cols.start + cols.stop) / 2 - 101) <= 1


def test_a_larger_label_gets_its_extent_plus_the_margin_and_crops_stay_inside_the_image():
    mask = _mask((512, 512), slice(0, 100), slice(450, 512))  # 100 rows tall, in the top-right corner
    rows, cols = focus_box(mask, [], 128)
    side = int(np.ceil(100 * (1 + 2 * FOCUS_MARGIN)))
    assert (rows.start, rows.stop) == (0, side) and (cols.start, cols.stop) == (512 - side, 512)
    # Most of the image: the whole pass is enough.
    assert focus_box(_mask((512, 512), slice(50, 400), slice(50, 60)), [], 128) is None


def test_the_crop_is_square_in_physical_size_for_non_square_pixels():
    mask = _mask((512, 256), slice(250, 260), slice(120, 125))
    rows, cols = focus_box(mask, [], 128, spacing=(0.5, 1.0))
    # At least 128 of the finer pixels (0.5 mm): 64 mm, so 128 rows and 64 columns.
    assert (rows.stop - rows.start, cols.stop - cols.start) == (128, 64)


def test_clicks_move_with_the_crop():
    box = (slice(10, 138), slice(30, 158))
    assert shift_clicks([(12.5, 40.0)], box) == [(2.5, 10.0)]


class _Recorder:
    """Logits = the image channel minus 0.5; records every input it is given."""

    def __init__(self):
        self.inputs = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return x[:, :1] - 0.5


def _refiner(focus: bool):
    recorder = _Recorder()
    meta = {"kind": "refine", "input_size": 128}
    # Without the clicks' geodesic reach and the mask's own intensities, which are added after the passes
    # (test_geodesic_prior.py, test_intensity_prior.py).
    return Refiner(recorder, meta, torch.device("cpu"), flip_average=False, focus=focus, geodesic=False,
                   intensity=False), recorder


def test_the_refiner_adds_a_native_resolution_pass_and_averages_it_in():
    rng = np.random.default_rng(0)
    image = rng.random((256, 256)).astype(np.float32)
    seed = _mask((256, 256), slice(100, 110), slice(120, 130))
    focused, rec = _refiner(True)
    out = focused._logits(image, seed, [(104, 125)], [(140, 140)], None, (1.0, 1.0))
    assert len(rec.inputs) == 2
    box = focus_box(seed, [(104, 125), (140, 140)], 128)
    crop = rec.inputs[1][0]
    # The crop is shown at the image's own resolution: its pixels are the image's, not resampled.
    np.testing.assert_array_equal(crop[0].numpy(), image[box])
    np.testing.assert_array_equal(crop[1].numpy() > 0.5, seed[box])
    # The positive click's map peaks where the click lies in the crop.
    peak = np.unravel_index(int(crop[2].argmax()), crop[2].shape)
    assert peak == (104 - box[0].start, 125 - box[1].start)
    whole, rec_whole = _refiner(False)
    alone = whole._logits(image, seed, [(104, 125)], [(140, 140)], None, (1.0, 1.0))
    assert len(rec_whole.inputs) == 1
    # Inside the crop: the mean of the whole pass and the crop's own logits (image - 0.5); outside: the whole pass.
    np.testing.assert_allclose(out[box], (alone[box] + image[box] - 0.5) / 2, atol=1e-6)
    outside = np.ones(image.shape, bool)
    outside[box] = False
    np.testing.assert_array_equal(out[outside], alone[outside])


def test_images_no_larger_than_the_input_get_one_pass_as_before():
    image = np.random.default_rng(1).random((128, 128)).astype(np.float32)
    seed = _mask((128, 128), slice(60, 64), slice(60, 64))
    focused, rec = _refiner(True)
    whole, _ = _refiner(False)
    np.testing.assert_array_equal(focused._logits(image, seed, [(61, 61)], [], None, (1.0, 1.0)),
                                  whole._logits(image, seed, [(61, 61)], [], None, (1.0, 1.0)))
    assert len(rec.inputs) == 1


@pytest.mark.parametrize("focus", [True, False])
def test_refiner_load_passes_the_choice_on(tmp_path, focus):
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.modeling.refine_net import RefineNet

    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    assert Refiner.load(path, device="cpu", focus=focus).focus is focus
