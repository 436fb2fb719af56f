"""The one place that decides the Keras flavour: tf-keras (Keras 2), as tfmot requires; saved
models are loaded through it too.

`TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first imported, so every
vision module imports `tf`, `keras` and `tfmot` from here and nowhere else.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from pathlib import Path  # noqa: E402

from pipelines.common import quiet  # noqa: E402
from pipelines.common.errors import ModelFileError  # noqa: E402

# TensorFlow's native messages of every level are held back, its benign start-up errors too
# (cuInit, NodeDef attributes), unless EDGESMITH_VERBOSE: real failures reach the stage as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if quiet.verbose() else "3")

with quiet.native_stderr():
    import tensorflow as tf
    import tf_keras as keras
if not quiet.verbose():
    import warnings

    import absl.logging

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|tensorflow_model_optimization)(\.|$)")

__all__ = ["tf", "keras", "load_model"]  # and `tfmot`, through __getattr__


def __getattr__(name: str):
    """`tfmot` (tensorflow-model-optimization), imported on first use after the settings above."""
    if name == "tfmot":
        with quiet.native_stderr():
            import tensorflow_model_optimization as tfmot
        return tfmot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(path: str | Path) -> keras.Model:
    """A saved Keras model; a file that is missing or not a model is the user's to fix (one line)."""
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0]})") from None
