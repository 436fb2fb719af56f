"""Loading saved Keras models for the stages that consume them."""

from __future__ import annotations

from pathlib import Path

from pipelines.common.errors import ModelFileError
from pipelines.vision.tfk import keras


def load_model(path: str | Path) -> keras.Model:
    """A saved Keras model; a file that is missing or not a model is the user's to fix (one line)."""
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0]})") from None
