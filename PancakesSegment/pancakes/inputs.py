"""Finding and reading the images of a batch: image files, DICOM series, study folders.

Usage::

    subjects, problems = find_subjects(["study/", "extra.nii.gz"])
    for s in subjects:
        loaded = load_subject(s)          # PancakesInputError with a one-line reason
        loaded.volume, loaded.plane_axis  # 3D scalar sitk.Image; size-1 axis of 2D images

Inputs are only ever opened for reading (SimpleITK readers never write), and
every failure becomes a :class:`PancakesInputError` whose message is one line.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import SimpleITK as sitk

from .data_size_checks import claimed_size_reason
from .dicom_checks import dicom_reason
from .errors import PancakesInputError
from .render import GALLERY_FILE
from .geometry_checks import geometry_reason, nrrd_spacing_reason
from .integrity import metaimage_reason, nifti_truncated
from .intensity import to_grey
from .subject_names import NOT_UTF8, not_utf8, printable, safe_name, unique_names  # noqa: F401 (re-exported)

# Longest first, so that ".nii.gz" wins over ".gz".
# ".hdr" is the header of a NIfTI/Analyze .hdr/.img pair; the .img beside it is its data, not a subject.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".png", ".tiff", ".tif", ".jpeg",
                  ".jpg")
# Outputs of this tool (and other segmentations) found while walking a study are not inputs.
SKIP_SUFFIXES = (".seg.nrrd",)
# What `pancakes segment` writes (batch.py). Met again while walking a study (an earlier
# OUT inside it, or OUT = INPUT), it is output, not input: segmenting label maps and the
# gallery as scans gives nonsense and fails on constant label maps.
MARKER = ".complete.json"
_SUBJECT_OUTPUT = re.compile(r"_P\d{2}(\.seg\.nrrd|\.nii\.gz|\.seg\.dcm)")


@dataclass
class Subject:
    """One thing to segment. ``files`` holds one path, or the slices of a DICOM series."""

    name: str  # unique, filesystem-safe; used for OUT/<name>/
    source: str  # what the user gave (shown in messages and failures.csv)
    files: List[str] = field(default_factory=list)
    series_uid: Optional[str] = None  # set for DICOM series

    @property
    def key(self) -> str:
        """Identity recorded in the completion marker, so --resume never mixes up inputs."""
        first = os.path.abspath(self.files[0]) if self.files else self.source
        return f"{first}#{self.series_uid}" if self.series_uid else first

    def stamp(self) -> Optional[List[int]]:
        """[files, bytes, newest mtime in ns] of the input, recorded in the completion marker so
        that --resume redoes a subject whose file was replaced since; None if it cannot be read."""
        try:
            stats = [os.stat(f) for f in self.files]
        except OSError:
            return None
        return [len(stats), sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0)]


@dataclass
class Loaded:
    """A subject read into memory.

    volume: 3D scalar sitk.Image with the input's geometry (2D images become one slice);
    plane_axis: for 2D images, the numpy axis (of the [k, j, i] array) whose size is 1,
    otherwise None.
    """

    volume: sitk.Image
    plane_axis: Optional[int]


def strip_suffix(filename: str) -> str:
    """'brain 1.nii.gz' -> 'brain 1'; unknown extensions lose their last suffix only."""
    low = filename.lower()
    for suffix in SKIP_SUFFIXES + IMAGE_SUFFIXES + (".dcm",):
        if low.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    stem = os.path.splitext(filename)[0]
    return stem or filename


def is_image_file(path: str) -> bool:
    low = path.lower()
    return low.endswith(IMAGE_SUFFIXES) and not low.endswith(SKIP_SUFFIXES)


def _dicom_series(folder: str) -> List[Tuple[str, List[str]]]:
    """(series UID, sorted slice files) for each DICOM series directly inside ``folder``."""
    reader = sitk.ImageSeriesReader
    # ITK warns on stderr for every folder without DICOM files; that is the normal case here.
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        uids = reader.GetGDCMSeriesIDs(folder)
    except RuntimeError:
        return []
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return [(uid, list(reader.GetGDCMSeriesFileNames(folder, uid))) for uid in uids]


def _series_label(files: Sequence[str], uid: str) -> str:
    """'<number> <description>' of a series, from its first file's header."""
    r = sitk.ImageFileReader()
    r.SetFileName(files[0])
    try:
        r.ReadImageInformation()
        parts = [r.GetMetaData(t).strip() for t in ("0020|0011", "0008|103e") if r.HasMetaDataKey(t)]
    except RuntimeError:
        parts = []
    return " ".join(p for p in parts if p) or uid.split(".")[-1]


def _is_subject_output(folder: str, filenames: Sequence[str]) -> bool:
    """A subject folder of an OUT: its marker, or <folder>_P01.nii.gz-style files (an unfinished one)."""
    name = os.path.basename(os.path.abspath(folder))
    return MARKER in filenames or any(f.startswith(name) and _SUBJECT_OUTPUT.fullmatch(f[len(name):])
                                      for f in filenames)


def _walk(root: str, exclude: Sequence[str], problems: List[Tuple[str, str]]) -> List[Tuple[List[str], str, List[str], Optional[str]]]:
    """-> (name parts, source, files, series UID) for every image and series under ``root``."""
    found = []
    excluded = {os.path.realpath(e) for e in exclude}
    visited: Set[str] = set()
    # Linked subject folders are common in studies (study/sub01 -> /data/raw/sub01), so links are
    # followed; a folder reached twice (a second link, or a link back up) is walked only once.
    def unlistable(exc: OSError) -> None:  # os.walk would skip the folder without a word
        problems.append((str(exc.filename), f"folder skipped: cannot list it: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        if not_utf8(dirpath):  # GDCM's series search would abort the process
            problems.append((printable(dirpath), f"folder skipped: {NOT_UTF8}"))
            dirnames[:] = []
            continue
        # Hidden folders (.git, our own temp/marker files) and the output folder are not inputs.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and os.path.realpath(os.path.join(dirpath, d)) not in excluded)
        if _is_subject_output(dirpath, filenames):
            dirnames[:] = []
            continue
        rel = os.path.relpath(dirpath, root)
        parts = [] if rel == "." else rel.split(os.sep)
        series = _dicom_series(dirpath)
        in_series = {os.path.realpath(f) for _, files in series for f in files}
        for uid, files in series:
            leaf = parts or [os.path.basename(os.path.abspath(root))]
            extra = [_series_label(files, uid)] if len(series) > 1 else []
            found.append((leaf + extra, os.path.join(root, rel) if parts else root, files, uid))
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            if f.startswith(".") or not is_image_file(f) or os.path.realpath(path) in in_series:
                continue
            if GALLERY_FILE.fullmatch(f) and "volumes.csv" in filenames:  # an OUT's contact sheet
                continue
            found.append((parts + [strip_suffix(f)], path, [path], None))
    return found


def find_subjects(inputs: Sequence[str], exclude: Sequence[str] = (),
                  reserved: Iterable[str] = ()) -> Tuple[List[Subject], List[Tuple[str, str]]]:
    """Expand INPUT arguments into subjects with unique, safe names.

    Files are taken as given (whatever their extension: SimpleITK decides);
    folders are searched recursively for image files and DICOM series, skipping
    ``exclude`` (the output folder). Returns (subjects, [(input, reason)] for
    inputs that yielded nothing).
    """
    raw: List[Tuple[List[str], str, List[str], Optional[str]]] = []
    problems: List[Tuple[str, str]] = []
    for item in inputs:
        if os.path.isfile(item):
            raw.append(([strip_suffix(os.path.basename(item))], item, [item], None))
        elif os.path.isdir(item):
            before = len(problems)
            found = _walk(item, exclude, problems)
            if not found and len(problems) == before:
                problems.append((item, "no image files or DICOM series found in this folder"))
            raw += found
        else:
            reason = missing_reason(item)
            problems.append((item, "no such file or directory" if reason == "no such file" else reason))
    # The same file reached twice (listed and inside a listed folder) is one subject.
    seen: Set[str] = set()
    unique = []
    for entry in raw:
        key = os.path.realpath(entry[2][0]) + f"#{entry[3]}"
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    raw = unique
    names = unique_names([safe_name("_".join(p)) for p, _, _, _ in raw], reserved)
    subjects = [Subject(n, printable(src), files, uid) for n, (_, src, files, uid) in zip(names, raw)]
    return subjects, [(printable(item), reason) for item, reason in problems]


def itk_reason(exc: Exception) -> str:
    """SimpleITK's multi-line exception text -> one short line worth showing a user."""
    text = str(exc)
    if "Unable to determine ImageIO reader" in text:
        return "not a readable image (unknown format, or a corrupt or truncated file)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if "ERROR:" in ln), lines[-1] if lines else type(exc).__name__)
    first = re.sub(r"^.*?ERROR:\s*", "", first)
    first = re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", first)  # drop "NrrdImageIO(0x55...): "
    detail = lines[-1] if lines and lines[-1] not in first and "ERROR:" not in lines[-1] else ""
    reason = f"cannot read image: {first}" + (f" ({detail})" if detail else "")
    return reason[:240]


def read_image(subject: Subject) -> sitk.Image:
    """Read a subject's file or DICOM series (read-only). Errors start with the subject's source."""
    try:
        if subject.series_uid is not None:
            for f in subject.files:  # GDCM misreads a corrupt file into gigabytes (dicom_checks.py)
                reason = dicom_reason(f)
                if reason:
                    raise PancakesInputError(f"{subject.source}: {os.path.basename(f)}: {reason}")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(subject.files)
            image = reader.Execute()
            reason = geometry_reason(image)
            if reason:
                raise PancakesInputError(f"{subject.source}: {reason}")
            return image
        path = subject.files[0]
        if not_utf8(path):
            raise PancakesInputError(f"{subject.source}: {NOT_UTF8}")
        if not os.path.isfile(path):
            raise PancakesInputError(f"{subject.source}: {missing_reason(path)}")
        if os.path.getsize(path) == 0:
            raise PancakesInputError(f"{subject.source}: file is empty (0 bytes)")
        if nifti_truncated(path):  # ITK would zero-fill the missing voxels without a word
            raise PancakesInputError(f"{subject.source}: file is truncated (it holds less image data than "
                                     "its NIfTI header describes)")
        reason = dicom_reason(path) or claimed_size_reason(path)  # before ITK allocates what the header claims
        if reason:
            raise PancakesInputError(f"{subject.source}: {reason}")
        image = sitk.ReadImage(path)
        reason = nrrd_spacing_reason(path, image) or geometry_reason(image)
        if reason:
            raise PancakesInputError(f"{subject.source}: {reason}")
        return image
    except RuntimeError as exc:
        picture = _read_grey_alpha(subject.files[0]) if "Unknown PixelType" in str(exc) else None
        if picture is not None:
            return picture
        better = metaimage_reason(subject.files[0]) if "File cannot be read" in str(exc) else None
        raise PancakesInputError(f"{subject.source}: {better or itk_reason(exc)}") from None
    except OSError as exc:
        raise PancakesInputError(f"{subject.source}: cannot read: {exc.strerror or exc}") from None


def _read_grey_alpha(path: str) -> Optional[sitk.Image]:
    """A grey + alpha picture (PNG/TIFF 'LA', e.g. an exported slice with transparency) as its grey
    channel, or None. ITK has no pixel type for two-channel pictures and fails with 'Unknown
    PixelType'; the alpha channel is display transparency, not image content."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode not in ("LA", "La"):
                return None
            grey = np.asarray(img.getchannel("L"))
    except (OSError, ValueError):
        return None
    return sitk.GetImageFromArray(grey)


def missing_reason(path: str) -> str:
    """Why ``path`` cannot be opened as a file: a broken link says where it points."""
    if os.path.islink(path):
        return f"broken link (it points to {os.readlink(path)}, which does not exist)"
    return "no such file" if not os.path.isdir(path) else "a folder, not a file"


def _is_rgb(image: sitk.Image) -> bool:
    # Colour photos and screenshots are 8/16-bit integer RGB(A); float vectors
    # (displacement fields, tensors) are not pictures and must not become grey.
    integer = {sitk.sitkVectorUInt8, sitk.sitkVectorUInt16, sitk.sitkVectorInt8, sitk.sitkVectorInt16}
    return image.GetNumberOfComponentsPerPixel() in (3, 4) and image.GetPixelID() in integer


def as_scalar_volume(image: sitk.Image, name: str = "image") -> Loaded:
    """Bring any readable image to a 3D scalar volume, or explain in one line why not."""
    pixel = image.GetPixelIDTypeAsString()
    if "complex" in pixel.lower():
        raise PancakesInputError(f"{name}: complex-valued pixels ({pixel}) are not supported")
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        # NIfTI often stores a single 3D volume with a trailing time axis of 1.
        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])
        dim = 3
    if dim not in (2, 3):
        size = "x".join(str(s) for s in image.GetSize())
        raise PancakesInputError(f"{name}: {dim}D image (size {size}); extract one 2D image or 3D volume first")
    comps = image.GetNumberOfComponentsPerPixel()
    if comps > 1:
        if not _is_rgb(image):
            raise PancakesInputError(f"{name}: vector-valued image ({comps} components per pixel, {pixel}); "
                                     "convert it to a scalar image first")
        arr = sitk.GetArrayFromImage(image)  # [(k,) j, i, c]
        grey = to_grey(arr, name) if dim == 2 else np.stack([to_grey(s, name) for s in arr])
        scalar = sitk.GetImageFromArray(grey)
        scalar.CopyInformation(image)
        image = scalar
    if 0 in image.GetSize():
        raise PancakesInputError(f"{name}: image is empty (size {image.GetSize()})")
    if dim == 2:
        image = sitk.JoinSeries([image])  # one slice, z spacing 1, 2D direction embedded
    size_kji = image.GetSize()[::-1]
    flat = [a for a, s in enumerate(size_kji) if s == 1]
    if len(flat) > 1:
        raise PancakesInputError(f"{name}: image of size {image.GetSize()} has fewer than two dimensions")
    return Loaded(image, flat[0] if flat else None)


def load_subject(subject: Subject) -> Loaded:
    """Read and classify one subject; PancakesInputError (one line) when it cannot be used."""
    return as_scalar_volume(read_image(subject), subject.source)


def sample_data_dir() -> Path:
    """The bundled sample collection (see Resources/SampleData/README.md)."""
    here = Path(__file__).resolve().parent
    candidates = [
        here.parent / "Resources" / "SampleData",  # source checkout, editable install, Slicer module
        here / "SampleData",  # wheel with bundled data
    ]
    for c in candidates:
        if c.is_dir() and any(is_image_file(p.name) for p in c.iterdir()):
            return c
    raise PancakesInputError("no bundled sample data found (looked in " + ", ".join(map(str, candidates)) + ")")
