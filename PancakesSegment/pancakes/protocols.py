"""Names, IDs, label values and colours of Pancakes labels, from (M, K, m, k) alone.

Every front end (CLI, Slicer, gallery) takes these from here, so label k of
protocol m looks and is called the same in every volume, run and machine.
Indices m and k are 0-based in code; what users see is 1-based.
"""
from __future__ import annotations

from typing import List, Tuple

RGB = Tuple[int, int, int]
# Bumped whenever a name, colour or label meaning changes, so that --resume redoes outputs written
# with older ones (2: ASCII names, colours past the 64-colour palette; 3: the last protocol is the
# coarse one, figure against ground, pancakes.coarse_protocol; 4: its boundary follows each
# image's intensities, pancakes.coarse_intensity; 5: every protocol's boundaries follow the image's
# edges, pancakes.superpixel_pooling; 6: the coarse protocol's intensity step weighs the image 4x as
# much, pancakes.coarse_intensity.INTENSITY_WEIGHT).
SCHEME = 6

# 64 colours chosen by farthest-point sampling in CIELAB (minimum pairwise
# distance ~24), skipping near-black and near-white, which read as background.
PALETTE: Tuple[RGB, ...] = (
    (225, 30, 30), (0, 255, 0), (0, 0, 255), (30, 210, 255),
    (90, 105, 0), (105, 30, 105), (255, 180, 180), (105, 255, 180),
    (255, 225, 0), (255, 45, 240), (15, 135, 255), (0, 75, 75),
    (255, 15, 135), (105, 45, 30), (240, 150, 60), (240, 150, 240),
    (225, 225, 150), (30, 165, 15), (90, 45, 195), (120, 120, 165),
    (45, 150, 105), (180, 240, 45), (180, 240, 225), (150, 135, 105),
    (225, 90, 105), (225, 210, 255), (0, 60, 135), (0, 255, 120),
    (195, 45, 165), (180, 0, 255), (165, 180, 45), (135, 0, 60),
    (0, 255, 240), (150, 75, 0), (180, 105, 135), (180, 120, 255),
    (90, 150, 150), (255, 105, 0), (75, 60, 75), (0, 75, 30),
    (0, 150, 225), (165, 240, 120), (135, 0, 0), (165, 165, 255),
    (255, 210, 90), (195, 120, 90), (75, 60, 0), (15, 120, 30),
    (255, 120, 180), (255, 30, 90), (180, 150, 60), (255, 195, 135),
    (105, 75, 180), (135, 165, 90), (240, 225, 210), (60, 105, 255),
    (255, 120, 255), (165, 0, 195), (90, 225, 45), (255, 120, 90),
    (90, 60, 255), (165, 165, 180), (105, 0, 135), (165, 225, 165),
)


def _check(M: int, K: int, m: int, k: int) -> None:
    if M < 1 or K < 1:
        raise ValueError(f"need M >= 1 and K >= 1, got M={M}, K={K}")
    if not 0 <= m < M:
        raise ValueError(f"protocol index m={m} is outside 0..{M - 1}")
    if not 0 <= k < K:
        raise ValueError(f"label index k={k} is outside 0..{K - 1}")


def label_value(M: int, K: int, m: int, k: int) -> int:
    """Voxel value of label k in a labelmap of protocol m: 1..K (0 stays 'outside')."""
    _check(M, K, m, k)
    return k + 1


def segment_id(M: int, K: int, m: int, k: int) -> str:
    """Segment ID, e.g. 'P03_L07'; stable so that IDs line up across volumes."""
    _check(M, K, m, k)
    return f"P{m + 1:02d}_L{k + 1:02d}"


def segment_name(M: int, K: int, m: int, k: int) -> str:
    """Human-readable segment name, e.g. 'P03 L07'.

    ASCII on purpose: Slicer writes a .seg.nrrd name as raw UTF-8 and reads it back
    so, but pynrrd (under slicerio) decodes header lines as ASCII and drops every
    other byte ('P03 \u00b7 L07' came back as 'P03  L07'). ASCII reads back the same in both."""
    _check(M, K, m, k)
    return f"P{m + 1:02d} L{k + 1:02d}"


def protocol_name(M: int, K: int, m: int) -> str:
    """Name of protocol m, e.g. 'Protocol 03 (M=8, K=20)'."""
    _check(M, K, m, 0)
    return f"Protocol {m + 1:02d} (M={M}, K={K})"


def colour(M: int, K: int, m: int, k: int) -> RGB:
    """RGB 0..255 of label k. Colour follows the label, not the protocol, so the K
    labels of a protocol are always mutually distinct: the palette for k < 64, then
    palette.EXTENSION (well spaced too) up to the largest K, 255."""
    _check(M, K, m, k)
    if k < len(PALETTE):
        return PALETTE[k]
    from .palette import EXTENSION  # only runs with K > 64 need it

    if k - len(PALETTE) >= len(EXTENSION):
        raise ValueError(f"label index k={k}: colours are defined for up to {len(PALETTE) + len(EXTENSION)} labels")
    return EXTENSION[k - len(PALETTE)]


def colour_float(M: int, K: int, m: int, k: int) -> Tuple[float, float, float]:
    """The same colour as floats in [0, 1], as MRML segments want it."""
    r, g, b = colour(M, K, m, k)
    return (r / 255.0, g / 255.0, b / 255.0)


def protocol_labels(M: int, K: int, m: int) -> List[dict]:
    """Everything about the K labels of protocol m, one dict per label."""
    return [
        {
            "k": k,
            "value": label_value(M, K, m, k),
            "id": segment_id(M, K, m, k),
            "name": segment_name(M, K, m, k),
            "rgb": colour(M, K, m, k),
        }
        for k in range(K)
    ]
