"""The engine: any image size in, label maps at that size out; volumes keep their geometry."""
import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.engine import Cancelled
from pancakes.errors import PancakesInputError


def test_segment_any_size_and_dtype(random_model):
    imgs = np.stack([np.random.default_rng(i).integers(0, 4000, (50, 70)).astype(np.uint16) for i in range(3)])
    out = random_model.segment(imgs, protocols=4, labels=6)
    assert out.shape == (3, 4, 50, 70)
    assert out.min() >= 1 and out.max() <= 6


def test_segment_rgb_and_mixed_sizes(random_model):
    rgb = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    out = random_model.segment([rgb, np.random.rand(20, 90)], protocols=2, labels=3)
    assert [o.shape for o in out] == [(2, 40, 30), (2, 20, 90)]


def test_decode_from_cache_matches_segment(random_model):
    imgs = [np.random.default_rng(1).random((64, 64))]
    enc = random_model.encode(imgs)
    full = random_model.segment(imgs, protocols=5, labels=7)[0]
    third = random_model.decode(enc, 5, 7, which=[2])[0]
    assert np.array_equal(third[0], full[2])


@pytest.mark.parametrize("bad, why", [
    (np.full((32, 32), 3.0), "constant"),
    (np.full((32, 32), np.nan), "NaN"),
    (np.zeros((2, 40)), "has a side under 4 pixels"),
    (np.zeros((4, 8, 8, 8)), "2D"),
    (np.random.rand(16, 16) + 1j, "complex"),  # used to drop the imaginary part with only a warning
])
def test_bad_images_get_clear_errors(random_model, bad, why):
    with pytest.raises(PancakesInputError, match=why):
        random_model.segment([bad])


def test_float64_beyond_float32_range_is_segmented_like_its_rescaled_copy(random_model):
    # Finite values past float32's range used to become inf in the cast and the image was
    # refused as "only NaN or infinite values".
    image = np.random.default_rng(3).random((40, 40))
    huge = image * 1e300
    assert np.array_equal(random_model.segment([huge]), random_model.segment([image]))


def test_bad_arguments(random_model):
    with pytest.raises(PancakesInputError, match="protocols"):
        random_model.segment([np.random.rand(16, 16)], protocols=0)
    with pytest.raises(PancakesInputError, match="labels"):
        random_model.segment([np.random.rand(16, 16)], labels=1.5)
    two = [np.random.rand(16, 16)] * 2
    with pytest.raises(PancakesInputError, match="names: 1 names for 2 images"):
        random_model.encode(two, names=["a"])
    # 0 or negative pixel sizes used to squash the image into one model row without a word.
    for spacings in ([(1.0, 1.0)], [(0.0, 1.0)] * 2, [(1.0, -1.0)] * 2, [(np.nan, 1.0)] * 2, [(1.0,)] * 2, [2.0] * 2):
        with pytest.raises(PancakesInputError, match="spacings"):
            random_model.encode(two, spacings=spacings)


def _volume(direction=(0, 1, 0, -1, 0, 0, 0, 0, 1)):
    arr = np.random.default_rng(0).random((12, 30, 20)).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.9, 3.0))
    img.SetOrigin((10.0, -5.0, 2.5))
    img.SetDirection(direction)
    return img


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_segment_volume_keeps_geometry(random_model, axis):
    img = _volume()
    maps = random_model.segment_volume(img, protocols=3, labels=4, axis=axis)
    assert len(maps) == 3
    for m in maps:
        assert m.GetSize() == img.GetSize()
        assert np.allclose(m.GetSpacing(), img.GetSpacing())
        assert np.allclose(m.GetOrigin(), img.GetOrigin())
        assert np.allclose(m.GetDirection(), img.GetDirection())
        a = sitk.GetArrayViewFromImage(m)
        assert a.min() >= 1 and a.max() <= 4


def test_volume_slices_match_2d_segmentation(random_model):
    # Axial slices of an LPS volume are the 2D images; results must agree.
    img = _volume(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    img.SetSpacing((1.0, 1.0, 1.0))
    vol = sitk.GetArrayFromImage(random_model.segment_volume(img, 2, 3)[0])
    arr = sitk.GetArrayFromImage(img)
    # Whole-volume normalisation differs from per-image: compare with the same intensities.
    from pancakes.preprocessing import normalise

    norm = normalise(arr)
    two_d = random_model.segment(list(norm), 2, 3)[:, 0]
    assert (vol == two_d).mean() > 0.98


def test_volume_bad_inputs(random_model):
    vec = sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3)
    with pytest.raises(PancakesInputError, match="vector"):
        random_model.segment_volume(vec)
    with pytest.raises(PancakesInputError, match="3D"):
        random_model.segment_volume(sitk.Image([8, 8], sitk.sitkFloat32))
    with pytest.raises(PancakesInputError, match="axis"):
        random_model.segment_volume(_volume(), axis="oblique")


@pytest.mark.parametrize("bad", [-1, 0, 2.5, True])
def test_bad_batch_sizes_are_refused(random_model, bad):
    """A negative batch size used to skip every slice: all-background volumes, or an empty encoding."""
    with pytest.raises(PancakesInputError, match="batch_size"):
        random_model.encode([np.random.rand(16, 16)], batch_size=bad)
    with pytest.raises(PancakesInputError, match="batch_size"):
        random_model.encode_volume(_volume(), batch_size=bad)
    with pytest.raises(PancakesInputError, match="batch_size"):
        random_model.predictor(_volume(), batch_size=bad).segment(2, 3)
    assert len(random_model.encode([np.random.rand(16, 16)] * 3, batch_size=np.int64(2)).features) == 3


def test_volume_cancel(random_model):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        random_model.encode_volume(_volume(), batch_size=4, cancel=cancel)


def test_cached_decode_equals_streaming_segmentation(random_model):
    img = _volume()
    streamed = random_model.segment_volume(img, 3, 5, axis="coronal")
    enc = random_model.encode_volume(img, axis="coronal")
    cached = random_model.decode_volume(enc, 3, 5)
    one = random_model.decode_volume(enc, 3, 5, which=[1])
    for s, c in zip(streamed, cached):
        assert np.array_equal(sitk.GetArrayViewFromImage(s), sitk.GetArrayViewFromImage(c))
    assert np.array_equal(sitk.GetArrayViewFromImage(one[0]), sitk.GetArrayViewFromImage(cached[1]))


def test_labels_from_logits_matches_upsampled_argmax():
    import torch
    import torch.nn.functional as F

    from pancakes.preprocessing import labels_from_logits, plan_fit

    torch.manual_seed(0)
    fit = plan_fit((40, 90), 32)  # padded rows, upsampled back to 40x90
    logits = torch.randn(2, 3, 5, 32, 32)
    got = labels_from_logits(logits, fit)
    (t, l), (h, w) = fit.offset, fit.inner
    ref = F.interpolate(logits.reshape(2, 15, 32, 32)[:, :, t : t + h, l : l + w], size=(40, 90),
                        mode="bilinear", align_corners=False).reshape(2, 3, 5, 40, 90).argmax(2) + 1
    assert got.shape == (2, 3, 40, 90) and got.dtype == torch.uint8
    assert torch.equal(got.long(), ref)
