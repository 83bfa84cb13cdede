"""The coarse protocol's intensity step (pancakes.coarse_intensity): it pulls a bled figure/ground
boundary back to where the intensities change, ignores padding, and every decode path applies it."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from pancakes.coarse_intensity import group_log_likelihood, refine_figure_ground, smoothed
from pancakes.coarse_protocol import apply_coarse
from pancakes.engine import Encoded, Pancakes
from pancakes.preprocessing import inner_box, labels_from_logits


def _disc(size: int = 64, r: int = 14) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((yy - size // 2) ** 2 + (xx - size // 2) ** 2) < r ** 2


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _bled_disc(noise: float, log_odds: float, slots: int = 3):
    """A bright disc (radius 14) on a dark ground with pixel noise, and a merged coarse protocol's logits
    [1, slots, 64, 64] that say figure over a disc 6 px too wide (as on the nuclei) with ``log_odds``.
    Returns (truth bool [64, 64], image [1, 1, 64, 64], slot logits)."""
    truth, wide = _disc(r=14), _disc(r=20)
    rng = torch.Generator().manual_seed(0)
    image = (0.2 + 0.5 * truth.float() + noise * torch.randn(64, 64, generator=rng))[None, None]
    slot = torch.full((1, slots, 64, 64), -1.0e4)
    slot[:, 0] = 0.0
    slot[:, 1] = torch.where(wide, log_odds, -log_odds)
    return truth, image, slot


def test_a_bled_boundary_moves_back_to_the_bright_object():
    """The network says figure over a disc 6 px too wide (as on the nuclei); the image's bright
    disc pulls the boundary back to the true one."""
    truth, image, slot = _bled_disc(noise=0.03, log_odds=2.0, slots=5)  # confident, but too wide
    refined = refine_figure_ground(slot, image)
    before, after = slot.argmax(1)[0] == 1, refined.argmax(1)[0] == 1
    assert _dice(before, truth) < 0.7 and _dice(after, truth) > 0.9
    # The empty slots stay empty, and weight 0 is the network's own two-class posterior.
    assert torch.equal(refined[:, 2:], slot[:, 2:])
    plain = refine_figure_ground(slot, image, weight=0.0)
    torch.testing.assert_close(torch.softmax(plain, 1), torch.softmax(slot, 1))


def test_a_confident_network_does_not_outweigh_a_clear_edge():
    """The network is sure (log-odds 6) of a figure 6 px too wide. At the default weight the image's
    edge still wins the bled ring; at the first weight shipped (2) the network's certainty kept the
    ring as figure, which is how the nuclei kept bleeding (MODEL_CARD.md, the intensity step)."""
    truth, image, slot = _bled_disc(noise=0.03, log_odds=6.0)
    default = refine_figure_ground(slot, image).argmax(1)[0] == 1
    old = refine_figure_ground(slot, image, weight=2.0).argmax(1)[0] == 1
    assert _dice(default, truth) > 0.9
    assert _dice(old, truth) < 0.75


def test_smoothing_keeps_noisy_pixels_from_speckling_the_boundary():
    """Pixel noise as strong as a third of the contrast: classified pixel by pixel, the figure
    breaks into many specks; smoothed first (the default), fewer specks and a better overlap."""
    from scipy import ndimage

    truth, image, slot = _bled_disc(noise=0.15, log_odds=2.0)
    masks = {s: (refine_figure_ground(slot, image, sigma=s).argmax(1)[0] == 1) for s in (0.75, 0.01)}
    specks = {s: ndimage.label(m.numpy())[1] for s, m in masks.items()}
    assert specks[0.75] < 0.8 * specks[0.01], specks
    assert _dice(masks[0.75], truth) > _dice(masks[0.01], truth) + 0.1
    # A constant image stays constant, and the default is the smoothed one.
    flat = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(smoothed(flat), flat)
    torch.testing.assert_close(refine_figure_ground(slot, image), refine_figure_ground(slot, image, sigma=0.75))


def test_padding_outside_the_image_is_left_out_of_the_fit():
    image = torch.full((1, 1, 8, 8), 0.5)
    image[..., :, 6:] = 0.0  # a padded strip, as to_model_input leaves it
    weights = torch.full((1, 2, 8, 8), 0.5)
    inside = group_log_likelihood(image, weights, inner=(0, 0, 8, 6))
    cropped = group_log_likelihood(image[..., :6], weights[..., :6])
    torch.testing.assert_close(inside[..., :6], cropped)
    assert not torch.allclose(group_log_likelihood(image, weights)[..., :6], cropped)


def test_an_image_without_object_stays_finite():
    image = torch.rand(2, 1, 16, 16)
    slot = torch.full((2, 3, 16, 16), -1.0e4)
    slot[:, 0] = 50.0  # the network sees no figure at all
    refined = refine_figure_ground(slot, image)
    assert torch.isfinite(refined).all() and (refined.argmax(1) == 0).all()


def test_engine_applies_the_step_on_every_path(random_model_path):
    """2D decodes, cached and streamed volumes all give the merge refined by the model inputs'
    intensities, and a caller's Encoded without inputs gets the merge alone."""
    rng = np.random.default_rng(2)
    images = [rng.random((40, 30)).astype(np.float32)]
    model = Pancakes.load(random_model_path, device="cpu", superpixels=False)  # the step alone
    enc = model.encode(images)
    assert len(enc.inputs) == 1 and enc.inputs[0].shape == (1, 1, 128, 128)
    fit = enc.fits[0]
    with torch.no_grad():
        raw = model.module.decode_logits_adapted(enc.features[0].float(), 4, 9, [], 1.0)
    expected = apply_coarse(model.module, raw.clone(), 4, 9, [], {}, enc.inputs[0].float(), inner_box(fit))
    merged = apply_coarse(model.module, raw.clone(), 4, 9, [], {})
    got = model.decode(enc, 4, 9)[0]
    np.testing.assert_array_equal(got, labels_from_logits(expected, fit)[0].numpy())
    no_inputs = Encoded(enc.features, enc.fits, enc.names)
    np.testing.assert_array_equal(model.decode(no_inputs, 4, 9)[0], labels_from_logits(merged, fit)[0].numpy())
    assert not torch.equal(expected[:, 3], merged[:, 3])

    vol = sitk.GetImageFromArray(rng.random((3, 24, 20)).astype(np.float32))
    cached = [sitk.GetArrayFromImage(i) for i in model.predictor(vol).decode(3, 7)]
    streamed = [sitk.GetArrayFromImage(i) for i in model.predictor(vol).segment(3, 7)]
    for a, b in zip(cached, streamed):
        np.testing.assert_array_equal(a, b)


def test_volume_paths_pass_the_model_inputs_and_the_image_box(random_model_path, monkeypatch):
    """Cached and streamed volume decodes hand the step the slices as the model saw them, and
    where the (non-square) slice sits inside the padded input."""
    import pancakes.coarse_protocol as cp

    seen = []
    real = cp.refine_figure_ground

    def spy(slot, images, inner=None):
        seen.append((tuple(images.shape), inner, float(images.max())))
        return real(slot, images, inner)

    monkeypatch.setattr(cp, "refine_figure_ground", spy)
    vol = sitk.GetImageFromArray(np.random.default_rng(4).random((2, 32, 16)).astype(np.float32))
    model = Pancakes.load(random_model_path, device="cpu")
    model.predictor(vol).decode(3, 7)
    model.predictor(vol).segment(3, 7)
    assert len(seen) == 2
    for shape, inner, top in seen:
        assert shape == (2, 1, 128, 128) and inner == (0, 32, 128, 64) and 0.9 < top <= 1.0
