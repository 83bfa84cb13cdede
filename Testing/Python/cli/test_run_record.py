"""OUT/run.json describes the run exactly; OUT/report.html is self-contained and its images decode."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image

from cli_runs import K, M, checksums
from study_files import write_volume

from pancakes import __version__
from pancakes.batch import file_sha256
from pancakes.cli import main


def _run(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def batch(tmp_path_factory, random_model_path):
    root = tmp_path_factory.mktemp("record")
    for seed, name in enumerate("abc"):
        write_volume(root / f"{name}.nii.gz", seed=seed, shape=(8, 24, 24))
    (root / "broken.nii.gz").write_bytes(b"\0" * 10)
    out = root / "out"
    args = ["segment", root / "a.nii.gz", root / "b.nii.gz", root / "c.nii.gz", root / "broken.nii.gz", "-o", out,
            "--model", random_model_path, "-M", M, "-K", K, "--device", "cpu", "--adapt", "0.5", "-q"]
    rc, err = _run(*args)
    return root, out, rc, args


def test_manifest_records_the_run(batch, random_model_path):
    root, out, rc, args = batch
    assert rc == 1
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["project"] == "PancakesSegment" and manifest["pancakes_version"] == __version__
    assert manifest["model"]["sha256"] == file_sha256(random_model_path)
    assert manifest["model"]["file"] == str(random_model_path.resolve()) and manifest["model"]["version"]
    assert manifest["settings"] == {"M": M, "K": K, "format": "seg.nrrd", "axis": "axial", "adapt": 0.5,
                                    "coarse": True, "superpixels": True, "model_sha256": file_sha256(random_model_path),
                                    "label_scheme": 6}
    (record,) = manifest["runs"]
    assert record["device"] == "cpu" and record["torch_version"] == torch.__version__
    assert record["argv"] == ["pancakes"] + [str(a) for a in args]
    subjects = {s["subject"]: s for s in manifest["subjects"]}
    assert sorted(subjects) == ["a", "b", "c"]
    for name, entry in subjects.items():
        st = os.stat(root / f"{name}.nii.gz")
        assert entry["fingerprint"] == {"files": 1, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        assert entry["seconds"] > 0 and entry["input"] == str(root / f"{name}.nii.gz")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self.external, self._in_h2 = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append((attrs.get("alt"), attrs["src"]))
        for key in ("src", "href"):
            if key in attrs and not str(attrs[key]).startswith("data:"):
                self.external.append(attrs[key])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data.strip())
            self._in_h2 = False


def test_report_is_self_contained_and_its_images_decode(batch):
    _, out, _, _ = batch
    text = (out / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert page.external == []  # nothing to fetch: the file can be mailed alone
    assert page.headings == ["Gallery", "Label volumes across subjects", "Outliers", "Failures",
                             "Run manifest (run.json)"]
    alts = [alt for alt, _ in page.images]
    assert alts == ["gallery.png"] + [f"Protocol {m + 1:02d} (M={M}, K={K})" for m in range(M)]
    for alt, src in page.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as im:
            im.load()
            assert im.width > 100 and im.height > 100, alt
    assert "broken.nii.gz" in text and json.loads((out / "run.json").read_text())["model"]["sha256"] in text


def test_resume_refuses_other_settings_and_leaves_out_alone(batch, random_model_path):
    root, out, _, args = batch
    before = checksums(out)
    rc, err = _run(*[a for a in args if a != "-q"][:-4], "--axis", "coronal", "--resume", "-q")
    assert rc == 2 and err.count("\n") == 1
    assert "run.json: --resume refused" in err and "axis axial -> coronal" in err and "adapt 0.5 -> 1.0" in err
    assert checksums(out) == before
    # Every protocol fine instead of the coarse last one changes the files too.
    rc, err = _run(*args, "--coarse", "0", "--resume")
    assert rc == 2 and "coarse True -> False" in err
    assert checksums(out) == before
    # So do boundaries left as the network draws them.
    rc, err = _run(*args, "--superpixels", "0", "--resume")
    assert rc == 2 and "superpixels True -> False" in err
    assert checksums(out) == before
    # The same settings resume: nothing to do, and run.json gains a second run record.
    rc, err = _run(*args, "--resume")
    assert rc == 1 and "3 already complete" in err
    assert len(json.loads((out / "run.json").read_text(encoding="utf-8"))["runs"]) == 2


def test_report_renders_in_headless_chromium(batch, tmp_path):
    """What scripts/screenshot_report.sh does for the README, on this batch's report."""
    import shutil
    import subprocess
    from pathlib import Path

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    _, out, _, _ = batch
    script = Path(__file__).resolve().parents[3] / "scripts" / "screenshot_report.sh"
    png = tmp_path / "report.png"
    subprocess.run(["bash", str(script), str(out), str(png)], check=True, timeout=180, capture_output=True)
    with Image.open(png) as im:
        assert im.size == (1280, 2200)
        # The gallery and the plots bring the label colours: far more than a page of text in black and grey.
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 200
