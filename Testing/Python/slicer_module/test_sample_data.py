"""The bundled samples are registered with Slicer's SampleData module, offline (issue 17)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

MODULE_DIR = Path(__file__).resolve().parents[3] / "PancakesSegment"
sys.path.insert(0, str(MODULE_DIR))
from PancakesSegmentLib.SampleDataSources import CATEGORY, sampleDataSources  # noqa: E402

# registerCustomSampleDataSource's keywords (Slicer's Modules/Scripted/SampleData/SampleData.py, 5.6 to main)
KEYWORDS = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader", "thumbnailFileName",
            "loadFileTypes", "loadFiles", "loadFileProperties", "checksums", "loadFileType"}


def test_every_bundled_volume_is_a_local_sample_source():
    sources = sampleDataSources()
    files = sorted((MODULE_DIR / "Resources" / "SampleData").glob("*.nrrd"))
    assert len(files) == 4 and len(sources) == 5  # one each, and the whole collection
    assert sources[-1]["fileNames"] == [f.name for f in files]
    for source in sources:
        assert set(source) <= KEYWORDS and source["category"] == CATEGORY
        assert len(source["uris"]) == len(source["fileNames"]) == len(source["nodeNames"]) == len(source["loadFileTypes"])
        for uri, name in zip(source["uris"], source["fileNames"]):
            parsed = urlparse(uri)
            assert parsed.scheme == "file"  # no network needed
            path = Path(url2pathname(parsed.path))
            assert path.is_file() and path.name == name
        assert Path(source["thumbnailFileName"]).is_file()


def test_module_registers_them_after_startup_with_a_guarded_import():
    module = ast.parse((MODULE_DIR / "PancakesSegment.py").read_text(encoding="utf-8"))
    register = next(f for f in ast.walk(module) if isinstance(f, ast.FunctionDef) and f.name == "registerSampleData")
    guarded = [t for t in ast.walk(register) if isinstance(t, ast.Try)
               and any(isinstance(s, ast.Import) and s.names[0].name == "SampleData" for s in t.body)
               and any(getattr(h.type, "id", "") == "ImportError" for h in t.handlers)]
    assert guarded, "import SampleData must be guarded: the module loads without it"
    assert "registerCustomSampleDataSource" in ast.dump(register)
    init = next(n for n in ast.walk(module) if isinstance(n, ast.ClassDef) and n.name == "PancakesSegment")
    assert "startupCompleted()" in ast.dump(init) and "registerSampleData" in ast.dump(init)


def test_cmake_ships_the_sample_volumes():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    for source in sampleDataSources():
        for name in source["fileNames"]:
            assert f"Resources/SampleData/{name}" in text, name
