"""Which OUT folder each subject of a batch writes to, given what OUT already holds.

Subject names come from file names (io.find_subjects); OUT may already hold folders
of earlier runs, of other inputs of the same name, or of the user. These rules keep
a subject from writing into a folder that is not its own, and send it back to its
own earlier results so that --resume finds them.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, List, Sequence, Tuple

from .inputs import MARKER, Subject, _is_subject_output, unique_names


def occupied_names(out_dir: str) -> List[str]:
    """Names in OUT that a subject folder must not take: files, and folders that are not subject
    folders of an earlier run (with OUT = INPUT, input folders; or anyone's folder). Writing a
    subject into one mixed outputs with inputs and made later walks skip the inputs inside."""
    taken = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return taken
    for entry in entries:
        if entry.is_dir():
            try:
                files = os.listdir(entry.path)
            except OSError:
                files = None
            # Empty, or holding only hidden files (temp files of an interrupted subject): free to use.
            if files is not None and (_is_subject_output(entry.path, files) or all(f.startswith(".") for f in files)):
                continue
        taken.append(entry.name)
    return taken


def _marker_keys(out_dir: str) -> dict:
    """{folder name: source_key} of the finished subject folders in OUT (their completion markers)."""
    keys = {}
    try:
        entries = [e for e in os.scandir(out_dir) if e.is_dir()]
    except OSError:
        return keys
    for entry in entries:
        try:
            with open(os.path.join(entry.path, MARKER), encoding="utf-8") as f:
                key = json.load(f).get("source_key")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(key, str):
            keys[entry.name] = key
    return keys


def keep_other_results(subjects: Sequence[Subject], out_dir: str,
                       taken: Iterable[str] = ()) -> Tuple[List[Subject], List[Tuple[str, str]]]:
    """Send each subject to the OUT folder that holds its own earlier results, and keep it out of
    folders that hold another input's -> (subjects, notes).

    Two runs into one OUT with different inputs of one name (a/scan.nii, then b/scan.nii)
    overwrote the first's results without a word; and a file added next to others of its
    name (a.mha beside a.nii, a.nii.gz) renumbers them all, so --resume found none of its
    finished subjects. A subject whose input has a finished folder goes back to it; one
    whose name is another input's folder takes the next free name, and ``notes`` holds a
    (source, message) line for it.
    """
    keys = _marker_keys(out_dir)
    if not keys:
        return list(subjects), []
    own = {key: name for name, key in keys.items()}
    try:
        used = set(taken) | {e.name for e in os.scandir(out_dir)} | {s.name for s in subjects}
    except OSError:
        return list(subjects), []
    back = {i: own[s.key] for i, s in enumerate(subjects) if s.key in own}  # their own earlier folders
    out, notes = [], []
    for i, s in enumerate(subjects):
        name = back.get(i, s.name)
        other = keys.get(name)
        # Its name is a finished folder that is not its own (its own would have sent it
        # back): another input's results, which includes a folder another subject goes back to.
        if i not in back and other is not None:
            name = unique_names([s.name], used)[0]
            used.add(name)
            notes.append((s.source, f"{os.path.join(out_dir, s.name)} holds the results of another input "
                                    f"({other.split('#')[0]}); writing to {name}"))
        out.append(s if name == s.name else Subject(name, s.source, s.files, s.series_uid))
    return out, notes
