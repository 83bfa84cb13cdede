"""Errors that front ends report as one line, without a traceback."""
from __future__ import annotations


class PancakesInputError(ValueError):
    """An input (file, image, argument) cannot be used; the message names it and says why."""


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not a Pancakes TorchScript file."""
