"""The one place that decides the Keras flavour: tf-keras (Keras 2), as tfmot requires.

`TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first imported, so every
vision module imports `tf` and `keras` from here and nowhere else.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic on CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
