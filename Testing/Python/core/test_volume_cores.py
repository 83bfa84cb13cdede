"""A volume's label cores (Predictor.cores): the labels where they are probable enough, 0 elsewhere."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from pancakes.contract import Cancelled
from pancakes.engine import Pancakes
from pancakes.errors import PancakesInputError
from pancakes.refine.seed_core import label_core


def _volume(seed=3):
    img = sitk.GetImageFromArray(np.random.default_rng(seed).random((3, 30, 24)).astype(np.float32))
    img.SetSpacing((0.9, 0.9, 2.0))
    return img


def test_cores_keep_labels_where_probable_and_match_the_2d_core(random_model_path):
    model = Pancakes.load(random_model_path, device="cpu")
    predictor = model.predictor(_volume())
    labels = sitk.GetArrayFromImage(predictor.decode(4, 6, which=[1])[0])
    loose = sitk.GetArrayFromImage(predictor.cores(4, 6, [1], min_probability=1e-6)[0])
    np.testing.assert_array_equal(loose, labels)  # every label is at least that probable
    # The 2D path's probabilities of the same slices; an untrained network is unsure, so the threshold is
    # their median top probability: half the pixels fall outside the cores.
    enc = model.encode([s for s in sitk.GetArrayFromImage(_volume())], spacings=[(0.9, 0.9)] * 3)
    probs = model.probabilities(enc, 4, 6, which=[1])
    t = float(np.median(np.concatenate([p[0].max(0).ravel() for p in probs])))
    cores = sitk.GetArrayFromImage(predictor.cores(4, 6, [1], min_probability=t)[0])
    assert ((cores == 0) | (cores == labels)).all() and (cores == 0).any() and (cores > 0).any()
    # Slice by slice and label by label, the core the 2D probabilities give (a few pixels may differ, where
    # the volume's upsampled argmax and the 2D softmax disagree on a near tie).
    for z, p in enumerate(probs):
        for k in range(6):
            agree = (cores[z] == k + 1) == label_core(p[0, k], t)
            assert agree.mean() > 0.98


def test_cores_need_named_protocols(random_model_path):
    predictor = Pancakes.load(random_model_path, device="cpu").predictor(_volume())
    with pytest.raises(PancakesInputError, match="name the protocols"):
        predictor.cores(4, 6, [])


def test_confidence_bytes_give_the_cores_and_the_2d_probabilities(random_model_path):
    """Predictor.confidence: floor(255 p) of each voxel's label, so labels and bytes give the cores."""
    model = Pancakes.load(random_model_path, device="cpu")
    predictor = model.predictor(_volume())
    labels = sitk.GetArrayFromImage(predictor.decode(4, 6, which=[1])[0])
    conf = sitk.GetArrayFromImage(predictor.confidence(4, 6, [1])[0])
    assert conf.dtype == np.uint8 and conf.shape == labels.shape
    enc = model.encode([s for s in sitk.GetArrayFromImage(_volume())], spacings=[(0.9, 0.9)] * 3)
    top = np.stack([p[0].max(0) for p in model.probabilities(enc, 4, 6, which=[1])])
    # The volume decodes float16 features, the 2D path float32: a few bytes apart at most, one on average.
    gap = np.abs(conf.astype(np.float32) / 255.0 - top)
    assert gap.max() < 0.03 and gap.mean() < 1.5 / 255.0
    t = float(np.median(top))
    level = int(np.floor(255.0 * t))
    cores = sitk.GetArrayFromImage(predictor.cores(4, 6, [1], min_probability=level / 255.0)[0])
    np.testing.assert_array_equal(np.where(conf >= level, labels, 0), cores)
    with pytest.raises(PancakesInputError, match="name the protocols"):
        predictor.confidence(4, 6, [])


def test_confidence_reports_its_progress_and_can_be_cancelled(random_model_path):
    # Picking a kept label in Slicer decodes its protocol's confidence: seconds on a CT, so it shows progress.
    predictor = Pancakes.load(random_model_path, device="cpu").predictor(_volume())
    heard = []
    image = predictor.confidence(4, 6, [1], progress=lambda done, total: heard.append((done, total)))[0]
    conf = sitk.GetArrayFromImage(image)
    depth = conf.shape[0]
    assert heard[-1] == (depth, depth) and [d for d, _ in heard] == sorted(d for d, _ in heard)
    with pytest.raises(Cancelled, match="cancelled after 0 of"):
        predictor.confidence(4, 6, [1], cancel=lambda: True)
