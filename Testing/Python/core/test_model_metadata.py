"""model_metadata.read_metadata: a model file's metadata read from the archive, without torch."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from pancakes.errors import ModelFileError
from pancakes.model_file import load_torchscript
from pancakes.model_metadata import read_metadata


def test_read_metadata_equals_what_loading_the_model_gives(random_model_path):
    assert read_metadata(random_model_path) == load_torchscript(random_model_path)[1]


def test_read_metadata_does_not_import_torch(random_model_path):
    # What a cluster client saves: the torch import (seconds) and the deserialisation of the network.
    code = ("import sys; from pancakes.model_metadata import read_metadata; "
            f"meta = read_metadata({str(random_model_path)!r}); "
            "assert meta['format_version'] == 1, meta; assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr


def _archive(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def test_read_metadata_refuses_what_loading_refuses_in_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    cases = {
        tmp_path / "missing.pt": "model file not found",
        bad: "bad.pt: not a readable TorchScript model",
        _archive(tmp_path / "none.pt", {"m/data.pkl": "x"}): "model format version None is not 1",
        _archive(tmp_path / "old.pt", {"m/extra/metadata.json": '{"format_version": 0}'}): "version 0 is not 1",
        _archive(tmp_path / "json.pt", {"m/extra/metadata.json": "{oops"}): "metadata.json inside the model is not valid JSON",
    }
    for path, reason in cases.items():
        with pytest.raises(ModelFileError, match=reason) as caught:
            read_metadata(path)
        assert "\n" not in str(caught.value)
