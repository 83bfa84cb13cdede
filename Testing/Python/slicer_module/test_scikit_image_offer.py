"""The panel's offer of scikit-image (PancakesSegmentLib/ScikitImageOffer.py): asked once, never in the way."""
from __future__ import annotations

import importlib.util

import pytest

from PancakesSegmentLib import ScikitImageOffer as offer


class Settings:
    """QSettings as the panel sees it: booleans come back as strings."""

    def __init__(self) -> None:
        self.values = {}

    def value(self, key, default=None):
        return self.values.get(key, default)

    def setValue(self, key, value) -> None:
        self.values[key] = "true" if value is True else value


class User:
    """Records the dialog, pip and the status lines; answers the dialog with ``says``."""

    def __init__(self, says: bool, installs=None) -> None:
        self.says, self.installs = says, installs
        self.asked, self.installed, self.told = [], [], []

    def confirm(self, message, windowTitle=None) -> bool:
        self.asked.append(message)
        return self.says

    def install(self, package) -> None:
        self.installed.append(package)
        if self.installs is not None:
            self.installs()

    def report(self, message) -> None:
        self.told.append(message)

    def offer(self, settings) -> bool:
        return offer.offerScikitImage(settings, self.confirm, self.install, self.report)


@pytest.fixture
def missing(monkeypatch):
    """scikit-image reported missing until ``state["there"]`` is set (as pip would)."""
    state = {"there": False}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if state["there"] else None) if name == "skimage"
                        else real(name, *a))
    return state


def test_nothing_is_asked_when_it_is_installed():
    user = User(says=True)
    assert offer.scikitImageInstalled()  # the test environment has it
    assert not user.offer(Settings()) and not user.asked and not user.installed


def test_yes_installs_it_and_says_the_models_must_be_loaded_again(missing):
    user = User(says=True, installs=lambda: missing.update(there=True))
    assert user.offer(Settings())
    assert user.installed == ["scikit-image"] and "scikit-image" in user.asked[0] and not user.told


def test_no_is_remembered_and_says_how_to_install_it_later(missing):
    settings, user = Settings(), User(says=False)
    assert not user.offer(settings)
    assert not user.installed and "pip_install('scikit-image')" in user.told[0]
    again = User(says=True)
    assert not again.offer(settings) and not again.asked  # not asked a second time, even across a restart


def test_a_failed_install_is_said_and_pancakes_runs_on(missing):
    def fails():
        raise RuntimeError("no network")

    user = User(says=True, installs=fails)
    assert not user.offer(Settings())
    assert "could not be installed (no network)" in user.told[0]
    quiet = User(says=True)  # pip ran but the package still cannot be imported
    assert not quiet.offer(Settings()) and "still cannot be imported" in quiet.told[0]
