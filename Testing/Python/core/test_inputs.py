"""Finding and reading batch inputs: names, study folders, DICOM series, 2D/3D/4D/vector images."""
from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from pancakes.errors import PancakesInputError
from pancakes.inputs import (Subject, as_scalar_volume, find_subjects, load_subject, read_image, safe_name,
                             sample_data_dir, strip_suffix, unique_names)
from study_files import write_dicom_series, write_volume


def test_safe_name_keeps_readable_characters_and_removes_unsafe_ones():
    assert safe_name("brain 1 ü 'x'") == "brain 1 ü 'x'"
    assert safe_name('a/b\\c:d*e?f"g<h>i|j') == "a_b_c_d_e_f_g_h_i_j"
    assert safe_name("  ..hidden. ") == "hidden"
    assert safe_name("") == "subject"
    assert safe_name("CON") == "CON_"
    long = safe_name("é" * 200)
    assert len(long.encode("utf-8")) <= 120 and set(long) == {"é"}


def test_strip_suffix_and_unique_names():
    assert strip_suffix("brain 1.nii.gz") == "brain 1"
    assert strip_suffix("case.NRRD") == "case"
    assert strip_suffix("x.seg.nrrd") == "x"
    assert strip_suffix("scan.v2.mha") == "scan.v2"
    assert unique_names(["a", "A", "a", "b"], reserved=["b"]) == ["a", "A_2", "a_3", "b_2"]


def test_find_subjects_walks_a_study_folder(tmp_path):
    study = tmp_path / "study"
    (study / "p1").mkdir(parents=True)
    (study / "p2").mkdir()
    (study / ".hidden").mkdir()
    write_volume(study / "p1" / "t1.nii.gz")
    write_volume(study / "p2" / "t1.nii.gz")
    write_volume(study / "top.nrrd")
    write_volume(study / ".hidden" / "no.nii.gz")
    (study / "notes.txt").write_text("not an image")
    out = study / "out"  # an output folder inside the study is not an input
    out.mkdir()
    write_volume(out / "already.nii.gz")
    again = str(study / "top.nrrd")  # listed on its own as well: still one subject
    subjects, problems = find_subjects([str(study), again, str(tmp_path / "missing.nii")], exclude=[str(out)])
    assert sorted(s.name for s in subjects) == ["p1_t1", "p2_t1", "top"]
    assert problems == [(str(tmp_path / "missing.nii"), "no such file or directory")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_subjects([str(empty)])[1][0][1].startswith("no image files")


def test_gallery_pages_of_an_earlier_out_are_not_inputs(tmp_path):
    # OUT = INPUT: every gallery page of the earlier run, not only gallery.png, is output.
    study = tmp_path / "study"
    study.mkdir()
    write_volume(study / "a.nii.gz")
    (study / "volumes.csv").write_text("subject\n")
    for name in ("gallery.png", "gallery_2.png", "gallery_notes.png"):
        Image.new("RGB", (8, 8)).save(study / name)
    subjects, _ = find_subjects([str(study)])
    assert sorted(s.name for s in subjects) == ["a", "gallery_notes"]


def test_symlinked_subject_folders_are_searched_once(tmp_path):
    """Studies are often folders of links to subjects elsewhere; os.walk did not follow them,
    so those subjects were dropped without a word (exit 0)."""
    study, elsewhere = tmp_path / "study", tmp_path / "raw"
    (elsewhere / "s2").mkdir(parents=True)
    study.mkdir()
    write_volume(study / "s1.nii.gz")
    write_volume(elsewhere / "s2" / "t1.nii.gz")
    os.symlink(elsewhere / "s2", study / "s2")
    os.symlink(study, study / "loop")  # a link back up must not walk forever
    os.symlink(elsewhere / "s2", study / "s2 again")  # the same folder twice is one subject
    subjects, problems = find_subjects([str(study)])
    assert problems == []
    assert sorted(s.name for s in subjects) == ["s1", "s2_t1"]


def test_unreadable_subfolder_is_reported_not_skipped(tmp_path, monkeypatch):
    """os.walk drops folders it cannot list (no permission on a lab share) without a word, so their
    subjects vanished from the batch and the run still exited 0. Root reads any folder, so the
    refusal is simulated."""
    study = tmp_path / "study"
    (study / "locked").mkdir(parents=True)
    (study / "open").mkdir()
    write_volume(study / "locked" / "a.nii.gz")
    write_volume(study / "open" / "b.nii.gz")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    subjects, problems = find_subjects([str(study)])
    assert [s.name for s in subjects] == ["open_b"]
    assert problems == [(str(study / "locked"), "folder skipped: cannot list it: Permission denied")]


def test_dicom_series_are_read_with_their_geometry(tmp_path):
    src = sitk.GetImageFromArray(np.arange(6 * 10 * 12, dtype=np.int16).reshape(6, 10, 12))
    src.SetSpacing((0.7, 0.8, 3.0))
    src.SetOrigin((-20.0, 15.0, 40.0))
    write_dicom_series(tmp_path / "study" / "series A", src, "1.2.826.0.1.3680043.2.1125.11")
    # Two series in one folder become two subjects, named by series number and description.
    write_dicom_series(tmp_path / "study" / "mixed", src, "1.2.826.0.1.3680043.2.1125.21", "AX T1", 3)
    write_dicom_series(tmp_path / "study" / "mixed", src[:, :, :4], "1.2.826.0.1.3680043.2.1125.22", "AX T2", 4)
    subjects, problems = find_subjects([str(tmp_path / "study")])
    assert problems == []
    names = sorted(s.name for s in subjects)
    assert names == ["mixed_3 AX T1", "mixed_4 AX T2", "series A"]
    by_name = {s.name: s for s in subjects}
    img = read_image(by_name["series A"])
    assert img.GetSize() == (12, 10, 6)
    assert np.allclose(img.GetSpacing(), (0.7, 0.8, 3.0))
    assert np.allclose(img.GetOrigin(), (-20.0, 15.0, 40.0))
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(src))
    assert read_image(by_name["mixed_4 AX T2"]).GetSize() == (12, 10, 4)


def test_read_errors_are_one_line_and_name_the_input(tmp_path):
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"this is not an image")
    empty = tmp_path / "empty.nrrd"
    empty.write_bytes(b"")
    for path, words in ((bad, "not a readable image"), (empty, "empty"), (tmp_path / "gone.nrrd", "no such file")):
        with pytest.raises(PancakesInputError) as err:
            read_image(Subject("x", str(path), [str(path)]))
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and words in msg and "\n" not in msg


@pytest.mark.parametrize("ext, cut", [(".nii", 100), (".nii.gz", 300), (".nii.gz", 40)])
def test_truncated_nifti_is_refused_not_zero_filled(tmp_path, ext, cut):
    """ITK reads a cut NIfTI without error, zero-filling what is missing; the batch must not segment it."""
    whole = tmp_path / f"whole{ext}"
    write_volume(whole)
    assert read_image(Subject("w", str(whole), [str(whole)])).GetSize() == (32, 32, 20)
    part = tmp_path / f"part{ext}"
    part.write_bytes(whole.read_bytes()[:-cut])
    with pytest.raises(PancakesInputError, match=r"truncated") as err:
        read_image(Subject("p", str(part), [str(part)]))
    assert str(err.value).startswith(f"{part}: ") and "\n" not in str(err.value)


def test_broken_metaimage_says_what_is_missing(tmp_path):
    """ITK blamed 'No such file or directory' on a .mha/.mhd that exists."""
    short = tmp_path / "short.mha"
    write_volume(short)
    short.write_bytes(short.read_bytes()[:-500])
    write_volume(tmp_path / "lost.mhd")
    (tmp_path / "lost.raw").unlink()
    cases = ((short, "image data is truncated"), (tmp_path / "lost.mhd", "'lost.raw' named in its header is missing"))
    for path, words in cases:
        with pytest.raises(PancakesInputError) as err:
            read_image(Subject("x", str(path), [str(path)]))
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and words in msg and "No such file" not in msg, msg


def test_2d_rgb_image_becomes_a_grey_one_slice_volume(tmp_path):
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[..., 0] = 200  # pure red -> luminance 0.299 * 200
    rgb[:4, :, 2] = 100
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    loaded = load_subject(Subject("photo", str(path), [str(path)]))
    assert loaded.plane_axis == 0 and loaded.volume.GetSize() == (16, 12, 1)
    arr = sitk.GetArrayFromImage(loaded.volume)[0]
    assert np.allclose(arr[5:, :], 0.299 * 200, atol=1e-3)
    assert np.allclose(arr[:4, :], 0.299 * 200 + 0.114 * 100, atol=1e-3)


def test_grey_alpha_png_is_read_as_its_grey_channel(tmp_path):
    # ITK has no pixel type for two-channel pictures: it failed with "Unknown PixelType".
    la = np.zeros((12, 16, 2), np.uint8)
    la[..., 0] = np.arange(16, dtype=np.uint8) * 10
    la[..., 1] = 255
    path = tmp_path / "slice.png"
    Image.fromarray(la, "LA").save(path)
    loaded = load_subject(Subject("slice", str(path), [str(path)]))
    assert loaded.plane_axis == 0 and loaded.volume.GetSize() == (16, 12, 1)
    assert np.array_equal(sitk.GetArrayFromImage(loaded.volume)[0], la[..., 0])


def test_scalar_volume_rules():
    vol = sitk.Image([8, 9, 10], sitk.sitkFloat32)
    assert as_scalar_volume(vol).plane_axis is None
    flat = sitk.Image([8, 1, 10], sitk.sitkInt16)  # a single coronal slice
    assert as_scalar_volume(flat).plane_axis == 1
    t1 = sitk.Image([8, 9, 10, 1], sitk.sitkInt16)  # NIfTI-style trailing time axis of 1
    assert as_scalar_volume(t1).volume.GetDimension() == 3
    with pytest.raises(PancakesInputError, match="4D image"):
        as_scalar_volume(sitk.Image([8, 9, 10, 3], sitk.sitkInt16), "four")
    with pytest.raises(PancakesInputError, match="vector-valued"):
        as_scalar_volume(sitk.Image([8, 9, 10], sitk.sitkVectorFloat32, 3), "field")
    with pytest.raises(PancakesInputError, match="fewer than two"):
        as_scalar_volume(sitk.Image([8, 1, 1], sitk.sitkInt16), "line")


def test_sample_collection_is_small_licensed_and_readable():
    folder = sample_data_dir()
    images = sorted(p for p in folder.iterdir() if p.name.endswith(".nrrd"))
    assert 3 <= len(images) <= 4
    assert sum(p.stat().st_size for p in images) <= 5 * 2**20
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "BSD-3-Clause" in readme and "pyradiomics" in readme
    for p in images:
        assert load_subject(Subject(p.stem, str(p), [str(p)])).plane_axis is None


def test_broken_links_say_so(tmp_path):
    link = tmp_path / "scan.nii.gz"
    link.symlink_to(tmp_path / "gone.nii.gz")
    _, problems = find_subjects([str(link)])
    assert problems == [(str(link), f"broken link (it points to {tmp_path / 'gone.nii.gz'}, which does not exist)")]
    study = tmp_path / "study"
    study.mkdir()
    (study / "a.nii.gz").symlink_to(tmp_path / "gone.nii.gz")  # inside a walked folder: found, then refused
    subjects, _ = find_subjects([str(study)])
    with pytest.raises(PancakesInputError, match=r"a\.nii\.gz: broken link \(it points to .*gone\.nii\.gz"):
        read_image(subjects[0])


def test_nifti_hdr_img_pairs_are_found_in_study_folders(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    src = write_volume(study / "pair.hdr", shape=(4, 8, 8))
    assert (study / "pair.img").exists()
    subjects, problems = find_subjects([str(study)])
    assert problems == [] and [s.name for s in subjects] == ["pair"]
    assert np.array_equal(sitk.GetArrayFromImage(read_image(subjects[0])), sitk.GetArrayFromImage(src))
