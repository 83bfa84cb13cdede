"""Subject names that are safe as file and folder names everywhere, unique, and printable.

Subject names come from file names (pancakes.inputs.find_subjects); the CLI and the
Slicer module's export write OUT/<name>/<name>_P03.seg.nrrd with them.

Usage::

    safe_name('a/b:c')                 # -> 'a_b_c'
    unique_names(["scan", "Scan"])     # -> ['scan', 'Scan_2'] (case-insensitive, for macOS and Windows)
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, List, Set

# Windows cannot create these, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
# Lone surrogates stand for bytes of a file name that is not UTF-8 (os.fsdecode); they cannot be encoded.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\ud800-\udfff]')
MAX_NAME_BYTES = 120  # leaves room for "_P08.seg.nrrd" and temp-file suffixes within 255 bytes


def safe_name(text: str) -> str:
    """Make ``text`` usable as a file and folder name on Linux, macOS and Windows.

    Spaces, quotes other than '"', and non-ASCII letters are kept (they are legal
    everywhere); path separators, control characters and Windows-forbidden ones
    become '_'.
    """
    name = unicodedata.normalize("NFC", text)
    name = _UNSAFE.sub("_", name).strip(" .")
    encoded = name.encode("utf-8")[:MAX_NAME_BYTES]
    name = encoded.decode("utf-8", errors="ignore").strip(" .")
    if not name:
        name = "subject"
    if name.split(".")[0].lower() in _RESERVED:
        name += "_"
    return name


def unique_names(names: Iterable[str], reserved: Iterable[str] = ()) -> List[str]:
    """Append _2, _3, ... where names clash; case-insensitively, for macOS and Windows."""
    taken: Set[str] = {r.lower() for r in reserved}
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def not_utf8(path: str) -> bool:
    """True for a path holding bytes that are not UTF-8 (e.g. a Latin-1 name from a zip). SimpleITK
    cannot take such a path: it aborts the whole process (SIGABRT) instead of raising."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


NOT_UTF8 = "its name is not valid UTF-8, which ITK cannot open; rename it"


def printable(path: str) -> str:
    """``path`` with the bytes that are not UTF-8 written as \\xNN, for messages and tables
    (writing the raw surrogates to failures.csv or a strict stream raises UnicodeEncodeError)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if not_utf8(path) else path
