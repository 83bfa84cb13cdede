"""The panel's parameter node: the run settings saved with the scene, and restored from QSettings in a new one.

Slicer-only (parameterNodeWrapper and QSettings need the application). The settings
themselves are Parameters.RunSettings, a parameterPack here: its fields are bound to
the panel's controls by name ("settings.protocols", ...), and the logic receives
``parameterNode.settings.validated()`` as it is, without the widget copying fields.

Usage::

    parameterNode = createParameterNode(slicer.mrmlScene)
    parameterNode.settings.labels = 12
    saveSettings(parameterNode)          # the next new scene starts from these
"""
from __future__ import annotations

import logging

import qt
from slicer.parameterNodeWrapper import parameterNodeWrapper

from .Parameters import RunSettings

MODULE_NAME = "PancakesSegment"
SETTINGS_KEYS = ("protocols", "labels", "device", "axis", "adapt", "coarse", "superpixels")


@parameterNodeWrapper
class PancakesSegmentParameterNode:
    """What a run needs besides the volumes; saved with the scene, and in QSettings across restarts."""

    settings: RunSettings


def savedSetting(key: str, value):
    """A QSettings value (often a string) as the run settings' type."""
    if key in ("protocols", "labels"):
        return int(value)
    if key in ("adapt", "coarse", "superpixels"):  # QSettings gives booleans back as "true" / "false" on most platforms
        return str(value).lower() in ("true", "1")
    return str(value)


def createParameterNode(scene) -> PancakesSegmentParameterNode:
    """The scene's parameter node of this module (made, and filled from QSettings, when the scene has none)."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    fresh = node is None
    if fresh:
        node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        node.UnRegister(None)
        node.SetSingletonTag(MODULE_NAME)
        node.SetName(scene.GenerateUniqueName(MODULE_NAME))
        node.SetAttribute("ModuleName", MODULE_NAME)
        node = scene.AddNode(node)
    wrapped = PancakesSegmentParameterNode(node)
    if fresh:  # a new scene starts from the user's last choices
        settings = qt.QSettings()
        for key in SETTINGS_KEYS:
            value = settings.value(f"{MODULE_NAME}/{key}")
            if value in (None, ""):
                continue
            try:
                setattr(wrapped.settings, key, savedSetting(key, value))
            except (TypeError, ValueError):
                logging.warning("PancakesSegment: ignoring saved setting %s=%r", key, value)
    return wrapped


def saveSettings(parameterNode: PancakesSegmentParameterNode) -> None:
    """Remember the run settings for the next new scene (and the next Slicer session)."""
    settings = qt.QSettings()
    for key in SETTINGS_KEYS:
        settings.setValue(f"{MODULE_NAME}/{key}", getattr(parameterNode.settings, key))


def saveValue(key: str, value) -> None:
    """Remember one value (a spin box read directly, a folder) under the module's QSettings group."""
    qt.QSettings().setValue(f"{MODULE_NAME}/{key}", value)


def savedValue(key: str, default=""):
    return qt.QSettings().value(f"{MODULE_NAME}/{key}", default)
