"""Accuracy of a Keras classifier on uint8 images (the TFLite runtime's is pipelines/edge/evaluate.py)."""

from __future__ import annotations

import numpy as np

from pipelines.vision.tfk import keras
from pipelines.vision.train import to_float


def accuracy(model: keras.Model, x_uint8: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Top-1 accuracy in inference mode, batch by batch (no Keras predict loop overhead)."""
    right = 0
    for start in range(0, len(x_uint8), batch_size):
        logits = model(to_float(x_uint8[start : start + batch_size]), training=False)
        right += int(np.sum(np.argmax(logits, -1) == y[start : start + batch_size]))
    return right / max(len(y), 1)
