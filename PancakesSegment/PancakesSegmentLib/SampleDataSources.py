"""The bundled sample volumes as Slicer SampleData sources ("Sample Data -> Pancakes"), offline (no Qt).

PancakesSegment.py registers them with SampleData.SampleDataLogic.registerCustomSampleDataSource
once Slicer has started; each source is the keyword arguments of that call. The URIs are
file: URIs of Resources/SampleData, which SampleData copies into its cache without a network.

Usage::

    for source in sampleDataSources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source)
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

CATEGORY = "Pancakes"
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "Resources" / "SampleData"
ICON = Path(__file__).resolve().parent.parent / "Resources" / "Icons" / "PancakesSegment.png"
TITLES = {"brain1": "Pancakes brain MR 1", "brain2": "Pancakes brain MR 2", "breast1": "Pancakes breast MR",
          "lung1": "Pancakes lung CT"}


def sampleDataSources(sampleDir: Optional[Path] = None) -> List[Dict[str, object]]:
    """One source per bundled volume, then one that loads the whole collection."""
    sampleDir = Path(sampleDir or SAMPLE_DIR)
    files = sorted(sampleDir.glob("*.nrrd"))
    sources = [_source(TITLES.get(f.stem, f"Pancakes {f.stem}"), [f]) for f in files]
    if len(files) > 1:
        sources.append(_source("Pancakes sample collection", files))
    return sources


def _source(name: str, files: List[Path]) -> Dict[str, object]:
    return {
        "category": CATEGORY,
        "sampleName": name,
        "uris": [f.as_uri() for f in files],
        "fileNames": [f.name for f in files],
        "nodeNames": [f.stem for f in files],
        "loadFileTypes": ["VolumeFile"] * len(files),
        "thumbnailFileName": str(ICON),
    }
