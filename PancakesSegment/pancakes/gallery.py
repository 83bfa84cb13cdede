"""Contact sheet of a batch: protocols (rows) x subjects (columns), middle slice each,
label colours blended over the grey image.

Usage::

    t = make_thumbnail(volume, label_volumes, M, K, axis="axial")   # per subject, small
    save_thumbnail("out/a/.thumbnail.npz", t)                        # so --resume can redraw it
    write_gallery("out/gallery.png", [("a", t), ...], M, K)
    write_gallery_pages("out", ["a", "b", ...], load, M, K)    # a batch: gallery.png, gallery_2.png, ...

Thumbnails are stored per subject so that a resumed batch can draw the gallery
of all its subjects without reading any image again. A batch's gallery is split
into pages of SUBJECTS_PER_PAGE subjects: one sheet of a 1,000-subject study would
be ~2,000 x 110,000 pixels (670 MB in memory, and most viewers refuse it).
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from . import protocols
from .errors import PancakesInputError
from .preprocessing import finite_float, normalise
from .segio import atomic_write
from .volume import AXES

TILE = 160  # pixels; a slice is fitted into TILE x TILE keeping its physical aspect
HEADER = 18
MARGIN = 44
COLUMNS_PER_BLOCK = 12  # wider batches wrap into several blocks, each with its own header
ALPHA = 0.45
SUBJECTS_PER_PAGE = 4 * COLUMNS_PER_BLOCK  # a page of M=8 rows stays ~2,000 x 5,300 px
GALLERY_FILE = re.compile(r"gallery(_\d+)?\.png")  # page 1 keeps the plain name scripts expect


@dataclass
class Thumbnail:
    """grey: uint8 [h, w]; labels: uint8 [M, h, w] engine labels 1..K (0 = none). h, w <= TILE."""

    grey: np.ndarray
    labels: np.ndarray


def _middle_slices(volume: sitk.Image, labels: Sequence[sitk.Image], axis: str,
                   plane_axis: Optional[int]) -> Tuple[np.ndarray, List[np.ndarray], Tuple[float, float]]:
    """-> (grey [rows, cols], label slices, pixel size (row mm, col mm)), display-oriented."""
    if plane_axis is not None:
        # A 2D image is shown as stored, whatever --axis says.
        spacing = [s for a, s in enumerate(volume.GetSpacing()[::-1]) if a != plane_axis]
        take = lambda img: np.take(sitk.GetArrayViewFromImage(img), 0, axis=plane_axis)  # noqa: E731
        return take(volume), [take(lb) for lb in labels], (spacing[0], spacing[1])
    a = AXES[axis]

    def take(img: sitk.Image) -> Tuple[np.ndarray, sitk.Image]:
        # The oriented image must stay referenced while its view is read: a view of a temporary
        # points into freed memory (a segfault on volumes over ~32 MB, wrong pixels below).
        oriented = sitk.DICOMOrient(_middle_slab(img, a), "LPS")
        arr = sitk.GetArrayViewFromImage(oriented)  # [z, y, x], z towards superior
        sl = np.take(arr, arr.shape[a] // 2, axis=a)  # a copy, so it outlives ``oriented``
        # Coronal and sagittal slices have z as rows: flip so that superior is up.
        return (sl[::-1] if a != 0 else sl), oriented

    grey, oriented = take(volume)
    spacing_zyx = oriented.GetSpacing()[::-1]
    plane = [s for i, s in enumerate(spacing_zyx) if i != a]
    return grey, [take(lb)[0] for lb in labels], (plane[0], plane[1])


def _middle_slab(img: sitk.Image, a: int) -> sitk.Image:
    """The one-voxel slab of ``img`` that DICOMOrient(img, "LPS") puts in the middle along array axis
    ``a``, with its geometry; reorienting only it spares a copy of the whole volume per label volume
    (+2 bytes a voxel of peak memory on a CT). The whole image when its axes are not plainly matched
    to patient axes (then DICOMOrient's own choice decides)."""
    direction = np.array(img.GetDirection(), float).reshape(3, 3)
    dominant = np.abs(direction).argmax(axis=0)  # patient axis (x=L, y=P, z=S) each image axis runs along
    target = 2 - a  # array axis a of an LPS-oriented [z, y, x] array is patient axis 2 - a
    if sorted(dominant.tolist()) != [0, 1, 2]:
        return img
    i = int(np.flatnonzero(dominant == target)[0])
    n = img.GetSize()[i]
    index = n // 2 if direction[target, i] > 0 else n - 1 - n // 2
    size, start = list(img.GetSize()), [0, 0, 0]
    size[i], start[i] = 1, index
    return sitk.Extract(img, size, start)


def _tile_shape(shape: Tuple[int, int], pixel_mm: Tuple[float, float]) -> Tuple[int, int]:
    h_mm, w_mm = shape[0] * pixel_mm[0], shape[1] * pixel_mm[1]
    scale = TILE / max(h_mm, w_mm)
    return max(1, min(TILE, round(h_mm * scale))), max(1, min(TILE, round(w_mm * scale)))


def make_thumbnail(volume: sitk.Image, labels: Sequence[sitk.Image], axis: str = "axial",
                   plane_axis: Optional[int] = None) -> Thumbnail:
    """Middle slice (along ``axis``) of a subject and its M label volumes, sized for the sheet."""
    grey, label_slices, pixel_mm = _middle_slices(volume, labels, axis, plane_axis)
    try:
        grey01 = normalise(finite_float(grey, "slice"), "slice")
    except PancakesInputError:  # a blank middle slice in a valid volume: show it black
        grey01 = np.zeros(grey.shape, np.float32)
    h, w = _tile_shape(grey.shape, pixel_mm)
    grey_img = Image.fromarray((grey01 * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    small = [np.asarray(Image.fromarray(np.asarray(s, np.uint8)).resize((w, h), Image.NEAREST)) for s in label_slices]
    return Thumbnail(np.asarray(grey_img), np.stack(small) if small else np.zeros((0, h, w), np.uint8))


def save_thumbnail(path: Union[str, Path], thumb: Thumbnail) -> Path:
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, grey=thumb.grey, labels=thumb.labels))


def load_thumbnail(path: Union[str, Path]) -> Thumbnail:
    with np.load(path) as data:
        return Thumbnail(data["grey"], data["labels"])


def overlay(thumb: Thumbnail, M: int, K: int, m: int) -> np.ndarray:
    """RGB uint8 [h, w, 3]: protocol m's label colours blended over the grey slice."""
    lut = np.zeros((max(K, int(thumb.labels[m].max(initial=0))) + 1, 3), np.float32)
    for k in range(K):
        lut[protocols.label_value(M, K, m, k)] = protocols.colour(M, K, m, k)
    grey = thumb.grey.astype(np.float32)[..., None]
    lab = thumb.labels[m]
    colour = lut[lab]
    alpha = np.where(lab > 0, ALPHA, 0.0)[..., None]
    return (grey * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def _dejavu_path() -> Optional[str]:
    """matplotlib's copy of DejaVu Sans, found without importing matplotlib (a slow import)."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    return None


def _font() -> ImageFont.ImageFont:
    """DejaVu Sans: Pillow's own default font has Latin letters only, so 'scan \u00fc 1' drew a
    missing-glyph box; DejaVu covers accented Latin, Greek, Cyrillic, Arabic and Hebrew (not CJK)."""
    path = _dejavu_path()
    try:
        return ImageFont.truetype(path, 11) if path else ImageFont.load_default(size=11)
    except (OSError, ImportError):  # no FreeType in this Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: Tuple[int, int], text: str, width: int, font) -> None:
    """Draw ``text`` cut to ``width`` pixels; fall back to ASCII where the font cannot."""
    for candidate in (text, text.encode("ascii", "replace").decode("ascii")):
        try:
            while candidate and draw.textlength(candidate, font=font) > width:
                candidate = candidate[:-2] + "\u2026" if len(candidate) > 2 else ""
            draw.text(xy, candidate, fill=(230, 230, 230), font=font)
            return
        except UnicodeEncodeError:
            continue


def render_gallery(items: Sequence[Tuple[str, Thumbnail]], M: int, K: int) -> Image.Image:
    """items: (subject name, thumbnail) in column order -> the contact sheet image."""
    if not items:
        raise ValueError("no subjects to draw")
    font = _font()
    blocks = [items[i : i + COLUMNS_PER_BLOCK] for i in range(0, len(items), COLUMNS_PER_BLOCK)]
    cell = TILE + 4
    block_h = HEADER + M * cell
    sheet = Image.new("RGB", (MARGIN + min(len(items), COLUMNS_PER_BLOCK) * cell, len(blocks) * block_h), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for b, block in enumerate(blocks):
        top = b * block_h
        for c, (name, thumb) in enumerate(block):
            x = MARGIN + c * cell
            _text(draw, (x + 2, top + 3), name, cell - 4, font)
            for m in range(M):
                tile = Image.fromarray(overlay(thumb, M, K, m))
                y = top + HEADER + m * cell
                sheet.paste(tile, (x + 2 + (TILE - tile.width) // 2, y + 2 + (TILE - tile.height) // 2))
        for m in range(M):
            _text(draw, (4, top + HEADER + m * cell + cell // 2 - 6), f"P{m + 1:02d}", MARGIN - 6, font)
    return sheet


def write_gallery(path: Union[str, Path], items: Sequence[Tuple[str, Thumbnail]], M: int, K: int) -> Path:
    """Render and write the contact sheet PNG atomically."""
    sheet = render_gallery(items, M, K)
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


def gallery_page_name(page: int) -> str:
    """0-based page index -> file name: gallery.png, gallery_2.png, gallery_3.png, ..."""
    return "gallery.png" if page == 0 else f"gallery_{page + 1}.png"


def write_gallery_pages(out_dir: Union[str, Path], names: Sequence[str], load: Callable[[str], Thumbnail],
                        M: int, K: int, per_page: int = SUBJECTS_PER_PAGE) -> List[Path]:
    """Contact sheets of ``names`` in pages of ``per_page`` subjects -> the pages written.

    ``load(name)`` gives a subject's thumbnail; they are loaded one page at a time so
    memory does not grow with the batch. Pages of an earlier, longer run (or its whole
    gallery when ``names`` is empty) are removed: a stale page would show subjects that
    volumes.csv no longer lists.
    """
    out_dir = Path(out_dir)
    written = []
    for page, start in enumerate(range(0, len(names), per_page)):
        items = [(n, load(n)) for n in names[start : start + per_page]]
        written.append(write_gallery(out_dir / gallery_page_name(page), items, M, K))
    keep = {p.name for p in written}
    for path in out_dir.iterdir():
        if GALLERY_FILE.fullmatch(path.name) and path.name not in keep and path.is_file():
            path.unlink(missing_ok=True)
    return written
