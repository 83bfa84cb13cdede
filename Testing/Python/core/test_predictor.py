"""The one inference entry point: encode once, decode any (M, K, m); 2D images as one-slice volumes."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import pancakes.volume
from pancakes.inputs import as_scalar_volume
from pancakes.predictor import Predictor, VolumePredictor


def _volume(shape=(5, 20, 24), seed=0):
    img = sitk.GetImageFromArray(np.random.default_rng(seed).random(shape).astype(np.float32))
    img.SetSpacing((0.9, 0.8, 2.5))
    return img


@pytest.fixture
def encodings(monkeypatch):
    """How many times the UNet went over a volume (one entry per encode pass)."""
    calls = []
    real = pancakes.volume.encoded_batches

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pancakes.volume, "encoded_batches", spy)
    return calls


def test_encode_once_then_decode_any_m_k_and_protocol(random_model, encodings):
    predictor = random_model.predictor(_volume(), axis="coronal")
    assert isinstance(predictor, Predictor) and not predictor.encoded
    full = predictor.decode(4, 6)  # encodes on first use
    assert predictor.encoded and len(encodings) == 1
    third = predictor.decode(4, 6, which=[2])
    fewer = predictor.decode(4, 3)
    assert len(encodings) == 1  # neither K nor the protocol chosen runs the UNet again
    assert np.array_equal(sitk.GetArrayViewFromImage(third[0]), sitk.GetArrayViewFromImage(full[2]))
    assert int(sitk.GetArrayViewFromImage(fewer[0]).max()) <= 3
    assert predictor.decode(4, 3) is fewer  # the same question: the same answer, not decoded again


def test_a_new_adaptation_decodes_again(random_model):
    predictor = random_model.predictor(_volume()).encode()
    first = predictor.decode(3, 4)
    try:
        random_model.set_adapt(0.0)
        assert predictor.decode(3, 4) is not first
    finally:
        random_model.set_adapt(1.0)


def test_a_2d_image_is_a_one_slice_volume_cut_in_its_own_plane(random_model):
    """The batch runner's 2D path: the same labels as the 2D API, in the one-slice volume's geometry."""
    picture = np.random.default_rng(3).random((30, 44)).astype(np.float32)
    image = sitk.GetImageFromArray(picture)
    image.SetSpacing((0.5, 0.7))
    loaded = as_scalar_volume(image, "picture")
    assert loaded.plane_axis == 0
    labels = random_model.predictor(loaded.volume, axis="sagittal", plane_axis=loaded.plane_axis).decode(3, 5)
    expected = random_model.decode(random_model.encode([picture], spacings=[(0.7, 0.5)]), 3, 5)[0]
    for m, lab in enumerate(labels):
        assert lab.GetSize() == loaded.volume.GetSize() and lab.GetSpacing() == loaded.volume.GetSpacing()
        assert np.array_equal(sitk.GetArrayViewFromImage(lab)[0], expected[m])


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("direction", [None, (-1, 0, 0, 0, 0, 1, 0, -1, 0)], ids=["LPS", "RSA"])
def test_streamed_and_cached_give_the_same_labels(random_model, axis, direction):
    """The streamed path pastes batches into label images (pancakes.label_stack); the cached path
    converts arrays: both must land every voxel in the same place, in the input's geometry."""
    img = _volume(seed=4)
    if direction is not None:
        img.SetDirection(direction)
    streamed = random_model.predictor(img, axis=axis).segment(3, 5)
    cached = random_model.predictor(img, axis=axis).decode(3, 5)
    for s, c in zip(streamed, cached):
        assert s.GetSize() == img.GetSize() and s.GetDirection() == img.GetDirection()
        assert np.array_equal(sitk.GetArrayViewFromImage(s), sitk.GetArrayViewFromImage(c))


def test_a_streamed_2d_image_matches_its_cached_decode(random_model):
    loaded = as_scalar_volume(sitk.GetImageFromArray(np.random.default_rng(5).random((30, 44)).astype(np.float32)), "p")
    streamed = random_model.predictor(loaded.volume, plane_axis=loaded.plane_axis).segment(2, 4)
    cached = random_model.predictor(loaded.volume, plane_axis=loaded.plane_axis).decode(2, 4)
    for s, c in zip(streamed, cached):
        assert np.array_equal(sitk.GetArrayViewFromImage(s), sitk.GetArrayViewFromImage(c))


def test_the_predictor_has_the_interface_callers_rely_on(random_model):
    members = [n for n in vars(VolumePredictor) if not n.startswith("_")]
    assert {"encode", "decode", "encoded"} <= set(members)
    predictor = random_model.predictor(_volume())
    assert all(hasattr(predictor, n) for n in members + ["image"])
