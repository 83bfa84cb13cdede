"""pancakes.dicom_seg on its own: voxel-exact round trip through highdicom, frames on the right instances."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicom_ct import write_ct_series

from pancakes import protocols
from pancakes.dicom_seg import algorithm_identification, build_dicom_seg, write_dicom_seg
from pancakes.errors import PancakesInputError
from pancakes.inputs import find_subjects, load_subject

hd = pytest.importorskip("highdicom")
M, K = 3, 6


@pytest.fixture
def series(tmp_path):
    write_ct_series(tmp_path / "ct", shape=(8, 20, 24), seed=4)  # files shuffled against slice order
    (subject,), _ = find_subjects([str(tmp_path / "ct")])
    volume = load_subject(subject).volume
    rng = np.random.default_rng(0)
    arr = rng.integers(1, K, sitk.GetArrayViewFromImage(volume).shape).astype(np.uint8)  # label K left empty
    arr[3] = 2  # one slice of a single label, to see that frames land on their own instance
    labels = sitk.GetImageFromArray(arr)
    labels.CopyInformation(volume)
    return subject, labels, arr


def test_round_trip_is_voxel_exact_and_on_the_right_instances(series, tmp_path):
    subject, labels, arr = series
    sha = "ab" * 32
    path = write_dicom_seg(tmp_path / "a_P02.seg.dcm", labels, subject.files, M, K, 1,
                           algorithm_identification("7", sha))
    seg = hd.seg.segread(path)
    assert [d.SegmentNumber for d in seg.SegmentSequence] == list(range(1, K + 1))  # the empty one included
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [protocols.segment_name(M, K, 1, k) for k in range(K)]
    lab = [hd.color.CIELabColor.from_rgb(*protocols.colour(M, K, 1, k)).value for k in range(K)]
    assert [tuple(d.RecommendedDisplayCIELabValue) for d in seg.SegmentSequence] == lab
    algo = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "Pancakes" and "model 7" in algo.AlgorithmVersion and sha in algo.AlgorithmParameters
    # Per source instance, the frames read back are the label slice at that instance's position.
    for f in subject.files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        z = int(round(labels.TransformPhysicalPointToContinuousIndex([float(v) for v in ds.ImagePositionPatient])[2]))
        got = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], combine_segments=True, relabel=False,
                                                assert_missing_frames_are_empty=True)[0]
        np.testing.assert_array_equal(got, arr[z])


def test_a_volume_that_is_not_the_series_is_refused_in_one_line(series):
    subject, labels, _ = series
    shifted = sitk.Image(labels)
    shifted.SetOrigin([v + 50 for v in labels.GetOrigin()])
    with pytest.raises(PancakesInputError) as info:
        build_dicom_seg(shifted, subject.files, M, K, 0, algorithm_identification("7", "0" * 64))
    assert "do not match" in str(info.value) and "\n" not in str(info.value)
