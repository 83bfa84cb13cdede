"""Synthetic Anatomix-like sets: determinism, label hygiene, shared templates."""
from __future__ import annotations

import numpy as np
import pytest

from pancakes.training.synthetic import SyntheticGenerator, relabel, split_labels, upsample_labels
from pancakes.training.synthetic_bank import TemplateBank
from pancakes.training.synthetic_shapes import KINDS, make_template

SIZE = 64


@pytest.fixture(scope="module")
def generator() -> SyntheticGenerator:
    # Small templates keep the bank build under a second; one of each kind.
    return SyntheticGenerator(size=SIZE, n_templates=len(KINDS), seed=0, template_size=40)


def test_same_seed_same_sets(generator: SyntheticGenerator) -> None:
    other = SyntheticGenerator(size=SIZE, n_templates=len(KINDS), seed=0, template_size=40)
    a = generator.sample_set(np.random.default_rng(7), 4)
    b = other.sample_set(np.random.default_rng(7), 4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labelmaps, b.labelmaps)
    assert (a.label, a.protocol) == (b.label, b.protocol)
    c = generator.sample_set(np.random.default_rng(8), 4)
    assert not np.array_equal(a.labelmaps, c.labelmaps)


def test_set_contents(generator: SyntheticGenerator) -> None:
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(15):
        task = generator.sample_set(rng, 3)
        kinds.add(task.protocol)
        assert task.images.shape == task.labelmaps.shape == (3, SIZE, SIZE)
        assert task.images.dtype == np.float32 and task.labelmaps.dtype == np.int32
        assert 0.0 <= task.images.min() and task.images.max() <= 1.0
        assert task.dataset == "synthetic" and task.protocol in KINDS
        assert task.label in task.common_labels()
        assert all((lab == task.label).any() for lab in task.labelmaps)
    assert len(kinds) >= 3


def test_template_slices_are_contiguous_and_clean(generator: SyntheticGenerator) -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        _, template = generator.template_slice(rng)
        values = np.unique(template)
        fg = values[values > 0]
        np.testing.assert_array_equal(fg, np.arange(1, fg.size + 1))
        counts = np.bincount(template.ravel())
        assert counts[1:].min(initial=20) >= 20


def test_split_and_relabel_hand_made() -> None:
    lab = np.zeros((30, 30), dtype=np.int64)
    lab[2:8, 2:8] = 5  # 36 pixels
    lab[20:26, 20:26] = 5  # a second piece of the same label
    lab[12:14, 12:14] = 9  # 4 pixels: under the threshold
    lab[2:8, 20:26] = 3
    split = relabel(split_labels(lab))
    assert sorted(np.unique(split)) == [0, 1, 2, 3]
    assert (split[12:14, 12:14] == 0).all()
    assert split[4, 4] != split[22, 22]
    merged = relabel(lab)
    assert sorted(np.unique(merged)) == [0, 1, 2]
    assert merged[4, 4] == merged[22, 22]


def test_upsampling_keeps_label_values() -> None:
    lab = np.zeros((20, 20), dtype=np.int64)
    lab[3:10, 3:15] = 4
    lab[12:18, 5:9] = 7
    up = upsample_labels(lab, 50)
    assert up.shape == (50, 50)
    assert set(np.unique(up)) == {0, 4, 7}
    # Areas scale with the size; the smooth resampling does not drift far.
    assert abs((up == 4).sum() / (50 / 20) ** 2 - (lab == 4).sum()) < 0.1 * (lab == 4).sum()


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of foreground pixels (of either map) where both carry the same label."""
    fg = (a > 0) | (b > 0)
    return float((a[fg] == b[fg]).mean())


def _area_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of per-label pixel counts: blind to where labels sit."""
    n = max(a.max(), b.max()) + 1
    ca = np.bincount(a.ravel(), minlength=n)[1:].astype(float)
    cb = np.bincount(b.ravel(), minlength=n)[1:].astype(float)
    return float(ca @ cb / (np.linalg.norm(ca) * np.linalg.norm(cb) + 1e-9))


def test_images_of_a_set_share_a_template(generator: SyntheticGenerator) -> None:
    rng = np.random.default_rng(2)
    sets = [generator.sample_set(rng, 2).labelmaps for _ in range(12)]
    pairs_within = [(s[0], s[1]) for s in sets]
    pairs_across = [(sets[i][0], sets[i + 1][1]) for i in range(len(sets) - 1)]
    # Independent rotations of up to 25 degrees each move small structures
    # off one another, so pixel agreement within a set is moderate, not high.
    within = np.mean([_agreement(*p) for p in pairs_within])
    across = np.mean([_agreement(*p) for p in pairs_across])
    assert within > 3 * across
    # Label sizes survive the warps: same label, similar area, within a set.
    assert np.mean([_area_similarity(*p) for p in pairs_within]) > 0.9
    assert np.mean([_area_similarity(*p) for p in pairs_across]) < 0.8
    # ... yet the images of a set are not copies of one another.
    assert all(not np.array_equal(s[0], s[1]) for s in sets)


def test_every_kind_builds_labels() -> None:
    for kind in KINDS:
        vol = make_template(kind, 32, np.random.default_rng(0))
        assert vol.shape == (32, 32, 32) and vol.dtype == np.uint8
        values = np.unique(vol)
        np.testing.assert_array_equal(values[values > 0], np.arange(1, values.max() + 1))
        assert values.max() >= 2


def test_bank_cache_round_trip(tmp_path) -> None:
    first = TemplateBank(2, 24, seed=3, cache_dir=tmp_path)
    vol = first.get(1)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    second = TemplateBank(2, 24, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.get(1), vol)
    np.testing.assert_array_equal(TemplateBank(2, 24, seed=3).get(1), vol)
