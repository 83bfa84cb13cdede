"""The refinement seed from a label's confident core: thresholding, its default, and bad input in one line."""
import numpy as np
import pytest

from pancakes.errors import PancakesInputError
from pancakes.refine.seed_core import SEED_CORE, label_core


def test_the_core_is_where_the_label_is_probable():
    p = np.array([[0.95, 0.81, 0.8], [0.79, 0.5, 0.0]], np.float32)
    assert label_core(p).tolist() == [[True, True, True], [False, False, False]]
    assert label_core(p, 0.5).tolist() == [[True, True, True], [True, True, False]]
    assert SEED_CORE == 0.8  # chosen on the select half (seed_core.py); the card reports it


def test_the_core_lies_inside_the_label_it_comes_from():
    """Probabilities over K sum to 1, so a pixel at >= 0.8 is the label's argmax: the core is a part of the mask."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (5, 16, 16))
    probs = np.exp(logits) / np.exp(logits).sum(0)
    core = label_core(probs[2])
    assert core.any() and not (core & (probs.argmax(0) != 2)).any()


@pytest.mark.parametrize("bad, message", [
    (np.array([0.5, 0.9]), "at least 2 dimensions"),
    (np.full((4, 4), np.nan), "finite"),
    (np.full((4, 4), 1.5), r"\[0, 1\]"),
])
def test_bad_probabilities_are_refused_in_one_line(bad, message):
    with pytest.raises(PancakesInputError, match=message):
        label_core(bad)


def test_a_threshold_outside_the_unit_interval_is_refused():
    with pytest.raises(PancakesInputError, match="threshold"):
        label_core(np.zeros((3, 3)), 0.0)
