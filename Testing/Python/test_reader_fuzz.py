"""A short seeded fuzz run of the readers (reader_fuzz.py): every mutated NIfTI, NRRD, MHA and DICOM
file is either segmented or refused with the usual one-line error. benchmarks/fuzz_readers.py runs
the long version."""
from __future__ import annotations

import collections

import reader_fuzz as rf


def test_two_hundred_mutated_files_are_segmented_or_refused_in_one_line(tmp_path, random_model_path):
    cases = rf.make_cases(tmp_path / "cases", 200, seed=0)
    results = rf.run_cases(cases, str(random_model_path), tmp_path, timeout=60.0)
    outcomes = collections.Counter(r.outcome for r in results)
    defects = [f"{r.case.path} ({r.case.kind}): {r.outcome} {r.detail}" for r in results
               if r.outcome not in ("segmented", "error")]
    assert not defects, "\n".join(defects)
    # Both endings occur, in every format: the mutations neither all miss nor all wreck the files.
    assert outcomes["segmented"] > 10 and outcomes["error"] > 10
    assert {r.case.fmt for r in results if r.outcome == "error"} == set(rf.FORMATS)


def test_the_harness_reports_a_crash_and_a_hang_and_carries_on(tmp_path, random_model_path):
    good = rf.make_cases(tmp_path / "cases", 2, seed=1)
    crash, hang = tmp_path / f"x{rf.SELF_TEST_CRASH}", tmp_path / f"y{rf.SELF_TEST_HANG}"
    cases = [rf.Case(str(crash), "-", "crash", ""), good[0], rf.Case(str(hang), "-", "hang", ""), good[1]]
    results = rf.run_cases(cases, str(random_model_path), tmp_path, timeout=5.0)
    assert [r.outcome for r in results][:3:2] == ["defect:signal", "defect:hang"]
    assert all(r.outcome in ("segmented", "error") for r in results[1::2])
