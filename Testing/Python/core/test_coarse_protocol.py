"""The coarse protocol: the last protocol's labels merged into figure and ground by their queries."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pancakes import Pancakes
from pancakes.coarse_protocol import (EMPTY_SLOT_LOGIT, apply_coarse, coarse_position, has_queries, merge_logits,
                                      query_groups)
from pancakes.errors import PancakesInputError
from pancakes.model_file import load_torchscript
from pancakes.modeling import PancakesNet
from pancakes.modeling.heads import FaithfulHead


def test_merged_probabilities_are_the_sums_of_their_members():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 5, 4, 4)
    groups = torch.tensor([0, 1, 1, 0, 1])
    merged = merge_logits(logits, groups)
    p, q = torch.softmax(logits, 2), torch.softmax(merged, 2)
    torch.testing.assert_close(q[:, :, 0], p[:, :, [0, 3]].sum(2))
    torch.testing.assert_close(q[:, :, 1], p[:, :, [1, 2, 4]].sum(2))
    assert (merged[:, :, 2:] == EMPTY_SLOT_LOGIT).all() and q[:, :, 2:].max() < 1e-6
    with pytest.raises(ValueError, match="4 entries for 5 labels"):
        merge_logits(logits, groups[:4])


def test_the_coarse_protocol_is_the_last_one_when_it_is_decoded():
    assert coarse_position(8, [], 1) == 7
    assert coarse_position(8, [2, 7], 1) == 1
    assert coarse_position(8, [0, 3], 1) is None
    assert coarse_position(8, [], 0) is None
    assert coarse_position(1, [], 1) is None  # a lone protocol stays fine


class _GivenQueries(nn.Module):
    """A head whose queries are given directly: the label embeddings pass through unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Identity()


class _Net(nn.Module):
    def __init__(self, queries: torch.Tensor) -> None:
        super().__init__()
        self.head = _GivenQueries()
        self.queries = queries

    def _embeddings(self, M, K, protocols, device):
        return self.queries[None, :K]


def test_groups_follow_the_queries_and_label_1_is_always_group_0():
    # Labels 2 and 4 point one way, 1, 3 and 5 the other: two groups, numbered by their first label.
    queries = torch.tensor([[1.0, 0.1], [-1.0, 0.0], [0.9, -0.1], [-1.0, 0.2], [1.0, 0.0]])
    groups = query_groups(_Net(queries), M=2, K=5, m=1)
    assert groups.tolist() == [0, 1, 0, 1, 0]
    assert query_groups(_Net(queries), M=2, K=2, m=1).tolist() == [0, 1]  # K <= 2: nothing to merge


def test_groups_of_a_real_network_and_its_torchscript_agree(random_model_path):
    torch.manual_seed(0)
    eager = PancakesNet(features=8, levels=3, hidden=16).eval()
    scripted, _ = load_torchscript(random_model_path)
    for net in (eager, scripted):
        assert has_queries(net)
        groups = query_groups(net, 8, 20, 7)
        assert groups.shape == (20,) and groups[0] == 0 and set(groups.tolist()) == {0, 1}
    assert not has_queries(nn.Module())


def test_apply_coarse_changes_only_the_last_protocol(random_model_path):
    scripted, _ = load_torchscript(random_model_path)
    torch.manual_seed(3)
    with torch.no_grad():
        logits = scripted.decode_logits(scripted.encode(torch.rand(2, 1, 32, 32)), 3, 6, [])
    cache: dict = {}
    merged = apply_coarse(scripted, logits.clone(), 3, 6, [], cache)
    assert torch.equal(merged[:, :2], logits[:, :2])
    assert set(merged[:, 2].argmax(1).unique().tolist()) <= {0, 1}
    assert list(cache) == [(3, 6)]
    # Without images (training through the merge), the merged slot holds the sum of its labels' probabilities.
    groups = cache[(3, 6)]
    torch.testing.assert_close(torch.softmax(merged[:, 2], 1)[:, 1],
                               torch.softmax(logits[:, 2], 1)[:, groups == 1].sum(1), atol=1e-5, rtol=0)
    untouched = apply_coarse(scripted, logits[:, :2].clone(), 3, 6, [0, 1], cache)
    assert torch.equal(untouched, logits[:, :2])


def test_engine_decodes_the_last_protocol_as_figure_and_ground(random_model_path):
    rng = np.random.default_rng(0)
    images = [rng.random((40, 30)).astype(np.float32) for _ in range(2)]
    fine = Pancakes.load(random_model_path, device="cpu", coarse=False)
    coarse = Pancakes.load(random_model_path, device="cpu")  # on by default
    assert coarse.coarse and not fine.coarse
    enc = coarse.encode(images)
    a, b = coarse.decode(enc, 4, 9), fine.decode(enc, 4, 9)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[:3], y[:3])
        assert set(np.unique(x[3])) <= {1, 2}
    # Asked for alone, the last protocol is the same merge; the first alone stays fine.
    np.testing.assert_array_equal(coarse.decode(enc, 4, 9, which=[3])[0][0], a[0][3])
    np.testing.assert_array_equal(coarse.decode(enc, 4, 9, which=[0])[0][0], b[0][0])
    # Soft outputs stay probabilities (the intensity step's posterior: test_coarse_intensity.py).
    p_coarse = coarse.probabilities(enc, 4, 9)[0]
    np.testing.assert_allclose(p_coarse[3].sum(0), 1.0, atol=1e-5)
    # One protocol in all: nothing to replace.
    np.testing.assert_array_equal(coarse.decode(enc, 1, 9)[0], fine.decode(enc, 1, 9)[0])


def test_volume_decodes_cache_by_coarse_setting(random_model_path):
    import SimpleITK as sitk

    vol = sitk.GetImageFromArray(np.random.default_rng(1).random((3, 24, 20)).astype(np.float32))
    model = Pancakes.load(random_model_path, device="cpu")
    predictor = model.predictor(vol)
    merged = sitk.GetArrayFromImage(predictor.decode(3, 7)[2])
    assert set(np.unique(merged)) <= {1, 2}
    model.set_coarse(False)
    fine = sitk.GetArrayFromImage(predictor.decode(3, 7)[2])
    assert not np.array_equal(fine, merged)  # not the cached coarse answer
    streamed = sitk.GetArrayFromImage(model.predictor(vol).segment(3, 7)[2])
    np.testing.assert_array_equal(streamed, fine)


def test_bad_setting_and_models_without_queries(random_model_path):
    model = Pancakes.load(random_model_path, device="cpu")
    with pytest.raises(PancakesInputError, match="coarse='yes'"):
        model.set_coarse("yes")
    net = PancakesNet(features=8, levels=3, hidden=16)
    net.head = FaithfulHead(phi_ch=9, emb_dim=34, hidden=4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        engine = Pancakes(net.eval(), {}, torch.device("cpu"), adapt=0.0)
    assert not engine.coarse and any("no label queries" in str(w.message) for w in seen)


def test_shipped_model_finds_a_whole_textured_object_only_with_the_coarse_protocol():
    """A disc of two tissues on a dark background: every fine protocol splits it (best label
    0.61 Dice with the shipped model); the coarse protocol gives the whole disc."""
    from pancakes.bundled import bundled_model_path
    from pancakes.errors import ModelFileError
    from pancakes.evaluation.metrics import set_scores

    try:
        path = bundled_model_path()
    except ModelFileError:
        pytest.skip("no model_weights/pancakes.pt in this checkout")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    images, discs = [], []
    for _ in range(3):
        cy, cx, r = rng.integers(45, 83), rng.integers(45, 83), rng.integers(22, 35)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        tissue = 0.5 + 0.3 * (np.sin(xx / 4) > 0)
        images.append((0.1 + 0.05 * rng.standard_normal((128, 128)) + disc * tissue).astype(np.float32))
        discs.append(disc)
    best = {}
    for coarse in (False, True):
        model = Pancakes.load(path, device="cpu", coarse=coarse)
        scores = set_scores(np.stack(model.decode(model.encode(images), 8, 20)), np.stack(discs))  # [M, K]
        best[coarse] = float(scores.max())
    assert best[True] >= 0.9 and best[True] > best[False] + 0.2, best
