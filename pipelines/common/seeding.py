"""The one `seed_everything`: Python's and NumPy's generators, and those of the framework this
process runs (TensorFlow for the vision stages, torch for the graph stages; never both)."""

from __future__ import annotations

import random
import sys

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the loaded framework; TensorFlow's ops are also made deterministic on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    if "tensorflow" in sys.modules:
        from pipelines.vision.tfk import keras, tf

        keras.utils.set_random_seed(seed)  # Python, NumPy, TensorFlow and tf-keras's own generator
        tf.config.experimental.enable_op_determinism()
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
