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
    # Names were 'P03 \u00b7 L07' until slicerio was found to drop the dot; SCHEME 2 made them ASCII.
    assert P.segment_name(8, 20, 2, 6) == "P03 L07"
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


def test_labels_past_the_palette_get_their_own_well_spaced_colours():
    """K = 65..255 used to reuse palette colours from label 65 on, without a word."""
    from skimage.color import rgb2lab

    from pancakes.palette import EXTENSION, farthest_point_extension

    cols = [P.colour(8, 255, 3, k) for k in range(255)]
    assert cols[:64] == list(P.PALETTE)  # colours users already have stay what they were
    assert len(set(cols)) == 255
    lab = rgb2lab(np.array(cols, dtype=float)[None] / 255)[0]
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(255) * 1e9
    assert d.min() > 12
    assert cols == [P.colour(2, 255, 0, k) for k in range(255)]  # a function of k: any M, m, K
    assert EXTENSION == farthest_point_extension(P.PALETTE, len(EXTENSION))  # the stored table is the recipe's


def test_names_are_ascii_so_every_reader_decodes_them_alike():
    assert all(P.segment_name(64, 255, m, k).isascii() for m in range(64) for k in range(255))


def test_identical_in_a_fresh_process():
    code = "from pancakes import protocols as P; print([P.protocol_labels(8, 20, m) for m in range(8)])"
    # Force UTF-8 both ways, whatever the locale, should a name ever hold more than ASCII.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", env=env,
                         check=True).stdout.strip()
    assert out == str([P.protocol_labels(8, 20, m) for m in range(8)])


@pytest.mark.parametrize("args", [(0, 5, 0, 0), (8, 20, 8, 0), (8, 20, 0, 20), (8, 20, -1, 0)])
def test_out_of_range_indices_are_errors(args):
    with pytest.raises(ValueError):
        P.segment_id(*args)
