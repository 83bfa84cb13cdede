"""Subject names in the gallery header draw real glyphs in accented and non-Latin scripts.

Pillow's default font has Latin letters only: 'scan \u00fc 1' drew a missing-glyph box.
A glyph is missing when the font draws it exactly like a code point no font has.
"""
from __future__ import annotations

import numpy as np
import pytest

from pancakes.gallery import HEADER, Thumbnail, _font, render_gallery

NO_FONT_HAS_IT = "\U0010fffd"  # a private-use code point: the font's missing-glyph box


@pytest.mark.parametrize("text", ["scan \u00fc 1", "M\u00fcller \u00e9t\u00e9 \u00df", "\u041c\u0420\u0422 1",
                                  "\u03a9mega", "\u00c5se \u0141\u00f3d\u017a"])
def test_font_has_the_glyphs_of_european_names(text):
    font = _font()
    box = bytes(font.getmask(NO_FONT_HAS_IT))
    missing = [ch for ch in text if not ch.isspace() and bytes(font.getmask(ch)) == box]
    assert not missing, f"no glyph for {missing}"


def test_the_header_shows_the_letter_not_the_box():
    thumb = Thumbnail(np.zeros((20, 20), np.uint8), np.ones((1, 20, 20), np.uint8))
    header = lambda name: np.asarray(render_gallery([(name, thumb)], 1, 2))[:HEADER]  # noqa: E731
    assert not np.array_equal(header("scan \u00fc 1"), header(f"scan {NO_FONT_HAS_IT} 1"))
