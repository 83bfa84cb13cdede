"""Label colours past the 64 of protocols.PALETTE, for K up to 255.

Labels 65..255 used to reuse the palette from the start (label 65 looked like label 1).
EXTENSION continues the same recipe that made the palette: farthest-point sampling in
CIELAB over the RGB grid of step 15, skipping colours darker or lighter than the palette's
own range (they read as background), each new colour the candidate farthest from all
chosen so far, starting from the 64 shipped colours. The table is stored rather than
computed at import so that no front end needs scikit-image (Slicer does not ship it);
``farthest_point_extension`` regenerates it and a test checks that the two agree.
"""
from __future__ import annotations

from typing import Sequence, Tuple

RGB = Tuple[int, int, int]
STEP = 15  # the palette's grid: every channel a multiple of 15
L_RANGE = (25.0, 91.0)  # CIELAB lightness of the shipped palette: 25.9 .. 90.7

# farthest_point_extension(protocols.PALETTE, 191): labels 65..255. All 255 colours are at least
# 13 CIELAB units apart (the 64 of the palette: 24).
EXTENSION: Tuple[RGB, ...] = (
    (15, 195, 195), (0, 195, 105), (240, 165, 210), (180, 90, 165),
    (0, 90, 135), (255, 0, 180), (195, 45, 120), (255, 180, 0),
    (75, 90, 60), (150, 180, 150), (120, 75, 120), (105, 180, 75),
    (135, 90, 90), (150, 195, 255), (75, 210, 165), (195, 75, 0),
    (135, 105, 45), (165, 75, 75), (180, 0, 60), (135, 105, 180),
    (120, 180, 0), (75, 105, 120), (195, 210, 0), (165, 225, 255),
    (195, 165, 0), (75, 120, 60), (60, 60, 105), (210, 90, 255),
    (0, 45, 165), (0, 120, 105), (0, 135, 165), (60, 105, 195),
    (255, 0, 0), (150, 255, 0), (75, 60, 45), (255, 150, 135),
    (90, 135, 0), (105, 240, 255), (225, 225, 105), (165, 75, 195),
    (105, 45, 60), (195, 60, 45), (255, 105, 210), (210, 165, 135),
    (135, 0, 90), (180, 150, 210), (195, 135, 135), (180, 120, 0),
    (150, 90, 255), (120, 120, 240), (180, 165, 105), (45, 0, 195),
    (120, 15, 30), (135, 135, 0), (45, 75, 0), (255, 150, 0),
    (105, 240, 120), (150, 195, 195), (255, 210, 225), (90, 60, 135),
    (0, 90, 210), (105, 180, 210), (165, 210, 120), (210, 240, 90),
    (105, 135, 105), (225, 45, 105), (165, 75, 45), (225, 150, 90),
    (180, 135, 240), (120, 105, 120), (225, 60, 210), (150, 60, 105),
    (60, 165, 90), (135, 0, 120), (210, 30, 240), (255, 225, 180),
    (240, 135, 165), (120, 90, 60), (105, 60, 0), (225, 195, 105),
    (135, 30, 225), (210, 225, 180), (0, 255, 210), (225, 225, 240),
    (105, 210, 135), (210, 105, 210), (120, 15, 255), (105, 150, 195),
    (135, 240, 210), (240, 120, 45), (60, 75, 240), (165, 135, 165),
    (0, 210, 75), (135, 135, 60), (180, 60, 90), (255, 90, 45),
    (195, 180, 165), (240, 60, 165), (120, 90, 225), (90, 180, 150),
    (135, 225, 75), (105, 135, 210), (45, 255, 75), (255, 75, 75),
    (225, 165, 45), (135, 105, 0), (165, 0, 165), (210, 90, 135),
    (30, 180, 240), (225, 180, 255), (120, 45, 0), (90, 90, 150),
    (180, 30, 0), (135, 60, 150), (210, 165, 180), (210, 105, 60),
    (0, 105, 45), (225, 210, 60), (105, 30, 75), (30, 165, 180),
    (120, 135, 135), (165, 105, 45), (180, 180, 90), (30, 165, 60),
    (30, 255, 150), (255, 0, 60), (195, 105, 0), (255, 180, 150),
    (60, 75, 75), (30, 135, 0), (150, 60, 210), (180, 135, 90),
    (150, 195, 75), (90, 90, 30), (240, 195, 30), (195, 0, 45),
    (45, 120, 180), (210, 240, 135), (75, 120, 30), (150, 90, 60),
    (120, 180, 120), (255, 90, 150), (180, 120, 180), (90, 45, 165),
    (210, 240, 0), (180, 195, 135), (120, 255, 105), (210, 105, 90),
    (60, 105, 90), (225, 135, 255), (165, 165, 210), (135, 240, 180),
    (105, 165, 255), (105, 105, 90), (240, 195, 180), (180, 195, 225),
    (225, 120, 195), (120, 210, 0), (255, 150, 105), (0, 105, 120),
    (240, 180, 90), (165, 240, 150), (210, 120, 120), (120, 0, 165),
    (15, 90, 0), (165, 135, 0), (255, 30, 210), (30, 0, 225),
    (195, 180, 60), (150, 210, 180), (195, 210, 195), (195, 15, 135),
    (210, 75, 165), (0, 225, 165), (165, 45, 45), (165, 60, 15),
    (90, 150, 75), (0, 75, 135), (45, 75, 210), (120, 210, 225),
    (210, 195, 150), (105, 210, 105), (210, 90, 225), (90, 240, 0),
    (255, 105, 105), (150, 75, 90), (165, 105, 195), (255, 75, 0),
    (135, 165, 60), (165, 135, 135), (120, 150, 255),
)


def farthest_point_extension(base: Sequence[RGB], n: int) -> Tuple[RGB, ...]:
    """The next ``n`` colours after ``base`` by greedy farthest-point sampling in CIELAB (deterministic:
    ties go to the first candidate in (r, g, b) order)."""
    import numpy as np
    from skimage.color import rgb2lab

    levels = np.arange(0, 256, STEP)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = rgb2lab(grid[None].astype(float) / 255.0)[0]
    keep = (lab[:, 0] >= L_RANGE[0]) & (lab[:, 0] <= L_RANGE[1])
    grid, lab = grid[keep], lab[keep]
    base_lab = rgb2lab(np.asarray(base, float)[None] / 255.0)[0]
    nearest = np.linalg.norm(lab[:, None] - base_lab[None], axis=-1).min(axis=1)
    out = []
    for _ in range(n):
        i = int(np.argmax(nearest))
        out.append(tuple(int(v) for v in grid[i]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return tuple(out)
