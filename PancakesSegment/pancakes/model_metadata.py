"""A Pancakes model file's metadata without torch: read from the TorchScript archive, not deserialised.

A TorchScript file is a zip archive; ``torch.jit.save(..., _extra_files={"metadata.json": ...})`` stores the
metadata as ``<archive name>/extra/metadata.json`` inside it. Reading that entry takes milliseconds and no
torch import (seconds), which is what a cluster client needs: its workers load the network, the client only
names and checks the model.

Usage::

    meta = read_metadata("model_weights/pancakes.pt")   # ModelFileError (one line) when unusable
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

from .errors import ModelFileError

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"


def check_metadata(path: Union[str, Path], text: str) -> Dict[str, Any]:
    """The metadata of ``path`` parsed from ``text``, or ModelFileError when it is not this format's."""
    try:
        meta = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: metadata.json inside the model is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path}: model format version {version!r} is not {FORMAT_VERSION}")
    return meta


def read_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """The metadata inside the model file ``path``, checked as ``model_file.load_torchscript`` checks it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            # One archive folder (named by whoever saved it), its extra files under extra/.
            names = [n for n in archive.namelist() if n.count("/") == 2 and n.endswith("/extra/" + METADATA_FILE)]
            text = archive.read(names[0]).decode("utf-8") if names else ""
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a readable TorchScript model ({type(exc).__name__}: {exc})") from None
    return check_metadata(path, text)
