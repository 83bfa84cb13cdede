"""Focus crop: a second refiner pass at the image's own resolution around the label and the clicks.

Why (issue 21): the refiner sees every image fitted into its 128 x 128 input, so on a 256 x 256 slice
a brain structure of 10 x 10 pixels reaches the network as 5 x 5, and its border comes back
interpolated from that. Clinical slices are 256-512 pixels wide, and the structures an annotator
refines are small. The crop is a square around the current mask and the clicks (with a margin of
FOCUS_MARGIN of its extent on each side), never smaller than the input size in the image's own
pixels (along the finer axis, for non-square pixels), so the crop is never shown upsampled
(blurred): on the dev split's 128 x 128 slices, zooming in by upsampling cost 0.01-0.10 Dice
(select half). Inside the crop the logits are the mean of the whole-image pass and the crop's
pass; outside, the whole-image pass alone.

Chosen on the select half of the dev split at 256 x 256 (MODEL_CARD.md, "Focus crop"): the mean
beat replacing the whole pass by the crop (the first click on brain and lung-lesion sessions
lost), and a crop allowed to upsample (96 pixels) gained less.

Example::

    box = focus_box(mask, clicks, input_size=128, spacing=(1.0, 1.0))   # None: the whole pass suffices
    if box is not None:
        logits[box] = (logits[box] + crop_logits) / 2
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

FOCUS_MARGIN = 0.4
# A crop this close to the whole image's longer side adds nothing the whole pass does not see.
MAX_SHARE = 0.8
Box = Tuple[slice, slice]


def focus_box(mask: np.ndarray, clicks: Sequence[Sequence[float]], input_size: int,
              spacing: Tuple[float, float] = (1.0, 1.0), margin: float = FOCUS_MARGIN) -> Optional[Box]:
    """The focus crop (row slice, column slice) of an image, or None when there is none to take.

    mask bool [H, W]: the current result; clicks: (row, col) positions in the image; spacing: (row, col)
    pixel size. The crop is square in physical size, centred on the bounding box of the mask and the
    clicks, its side that box's longer side times 1 + 2 * margin, at least ``input_size`` pixels of the
    finer axis, and shifted to lie inside the image. None without mask and clicks, or when the crop
    would cover more than MAX_SHARE of the image's longer physical side (small images: always).
    """
    m = np.asarray(mask, bool)
    rows, cols = np.nonzero(m)
    pts = np.asarray([(float(p[0]), float(p[1])) for p in clicks], float).reshape(-1, 2)
    if rows.size == 0 and pts.size == 0:
        return None
    r = np.concatenate([rows.astype(float), pts[:, 0]])
    c = np.concatenate([cols.astype(float), pts[:, 1]])
    sp_r, sp_c = float(spacing[0]), float(spacing[1])
    extent_mm = max((r.max() - r.min() + 1) * sp_r, (c.max() - c.min() + 1) * sp_c)
    side_mm = max(extent_mm * (1 + 2 * margin), input_size * min(sp_r, sp_c))
    if side_mm > MAX_SHARE * max(m.shape[0] * sp_r, m.shape[1] * sp_c):
        return None
    return (_span(r.min(), r.max(), side_mm / sp_r, m.shape[0]), _span(c.min(), c.max(), side_mm / sp_c, m.shape[1]))


def _span(low: float, high: float, length: float, size: int) -> slice:
    """``length`` pixels (at most ``size``) centred on [low, high], shifted to lie within 0..size."""
    n = min(size, int(np.ceil(length)))
    start = int(round((low + high + 1) / 2 - n / 2))
    start = min(max(start, 0), size - n)
    return slice(start, start + n)


def shift_clicks(clicks: Sequence[Sequence[float]], box: Box) -> list:
    """Clicks (row, col) in the image -> the same clicks in the crop ``box``."""
    return [(float(p[0]) - box[0].start, float(p[1]) - box[1].start) for p in clicks]
