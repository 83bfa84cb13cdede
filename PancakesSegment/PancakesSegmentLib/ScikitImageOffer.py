"""Offering scikit-image in Slicer, whose Python ships SciPy but not scikit-image.

Why: without it Pancakes still runs, but two measured gains are quietly off, each said only in the Python
console: label boundaries stay as the network draws them (superpixel pooling, on by default; +0.013 to +0.025 of
Set Dice on the dev test half, pancakes.superpixel_pooling), and clicks lose their geodesic reach (pancakes.refine.
geodesic_prior; 0.4 / 1.0 Dice points at 3 / 10 clicks). Outside Slicer pip installs it with the package. In
Slicer the panel offers it at the first Run or refinement, as it offers PyTorch and highdicom; a user who says no
is not asked again (remembered in the application settings) and is told how to install it later.

No Qt here: offerScikitImage takes the dialog, pip and the settings as arguments, so that the decision is tested
under plain pytest; the panel passes Slicer's (WidgetRun.offerScikitImageInSlicer).

Usage (in the panel)::

    offerScikitImage(qt.QSettings(), slicer.util.confirmOkCancelDisplay, install, report)
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Callable

PACKAGE = "scikit-image"
DECLINED_KEY = "PancakesSegment/scikitImageDeclined"
OFFER = ("Pancakes works better with the scikit-image Python package, which this Slicer does not have: label "
         "boundaries then follow the image's edges, and refinement clicks reach along their own structure. "
         "Install it now (pip, about 16 MB of downloads)?")
LATER = ("Running without scikit-image: label boundaries stay as the network draws them and clicks reach less "
         "far. To install it later, run slicer.util.pip_install('scikit-image') in the Python console.")


def scikitImageInstalled() -> bool:
    """Whether scikit-image can be imported now (import caches refreshed: pip may have just installed it)."""
    importlib.invalidate_caches()
    try:
        return importlib.util.find_spec("skimage") is not None
    except (ImportError, ValueError):  # a half-imported package (its sys.modules entry None): not usable
        return False


def _declined(settings) -> bool:
    # QSettings gives booleans back as "true" / "false" on most platforms.
    return str(settings.value(DECLINED_KEY, "false")).lower() in ("true", "1")


def offerScikitImage(settings, confirm: Callable[..., bool], install: Callable[[str], object],
                     report: Callable[[str], None]) -> bool:
    """Offer to install scikit-image when it is missing and the user has not declined it before.

    settings: QSettings-like (value(key, default), setValue(key, value)); confirm(message, windowTitle=...) -> bool
    (the dialog); install(package) (pip; may raise); report(message): a line for the user. -> True when it was
    installed now (models loaded before then lack what it gives: load them again), else False.
    """
    if scikitImageInstalled() or _declined(settings):
        return False
    if not confirm(OFFER, windowTitle="Pancakes"):
        settings.setValue(DECLINED_KEY, True)
        report(LATER)
        return False
    try:
        install(PACKAGE)
    except Exception as error:  # noqa: BLE001 - pip fails in many ways (no network, no wheel); Pancakes runs on
        logging.exception("PancakesSegment: installing scikit-image failed")
        report(f"scikit-image could not be installed ({error}). {LATER}")
        return False
    if not scikitImageInstalled():
        report(f"pip ran, but scikit-image still cannot be imported. {LATER}")
        return False
    return True

