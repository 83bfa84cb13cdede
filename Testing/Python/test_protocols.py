"""Names, IDs, values and colours depend on (M, K, m, k) alone and never drift."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from pancakes import protocols as P


def test_known_values_are_stable():
    # Changing these breaks every segmentation users already saved: on purpose, a test pins them.
    assert P.segment_id(8, 20, 2, 6) == "P03_L07"
    assert P.segment_name(8, 20, 2, 6) == "P03 \u00b7 L07"
    assert P.label_value(8, 20, 2, 6) == 7
    assert P.colour(8, 20, 0, 0) == (225, 30, 30)
    assert P.colour(8, 20, 5, 2) == (0, 0, 255)


def test_same_label_same_look_in_every_protocol_and_distinct_within_one():
    for M, K in [(8, 20), (3, 40), (15, 64)]:
        for m in range(M):
            cols = [P.colour(M, K, m, k) for k in range(K)]
            assert len(set(cols)) == K  # distinct inside a protocol
            assert cols == [P.colour(M, K, 0, k) for k in range(K)]
        ids = {P.segment_id(M, K, m, k) for m, k in itertools.product(range(M), range(K))}
        assert len(ids) == M * K


def test_palette_is_clearly_distinct():
    from skimage.color import rgb2lab

    lab = rgb2lab(np.array(P.PALETTE, dtype=float)[None] / 255)[0]
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(len(lab)) * 1e9
    assert len(P.PALETTE) >= 64
    assert d.min() > 20  # CIELAB distance: clearly distinguishable side by side


def test_identical_in_a_fresh_process():
    code = "from pancakes import protocols as P; print([P.protocol_labels(8, 20, m) for m in range(8)])"
    # Names hold a middle dot: force UTF-8 both ways, whatever the locale.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", env=env,
                         check=True).stdout.strip()
    assert out == str([P.protocol_labels(8, 20, m) for m in range(8)])


@pytest.mark.parametrize("args", [(0, 5, 0, 0), (8, 20, 8, 0), (8, 20, 0, 20), (8, 20, -1, 0)])
def test_out_of_range_indices_are_errors(args):
    with pytest.raises(ValueError):
        P.segment_id(*args)
