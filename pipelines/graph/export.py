"""The GLNN student rebuilt in tf-keras from its PyTorch weights, and converted to TFLite.

TensorFlow only (through `pipelines.vision.tfk`): this module must never import torch. The
weights arrive as NumPy arrays in Keras layout (kernel: in x out), written by gnn_distill.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipelines.vision import convert
from pipelines.vision.tfk import keras


def build_mlp(weights: Mapping[str, np.ndarray]) -> keras.Model:
    """Dense + ReLU layers, logits out: the same function as the PyTorch `MLP` (dropout is training-only)."""
    n = sum(1 for k in weights if k.startswith("kernel_"))
    if n == 0:
        raise ValueError("no kernel_0 .. kernel_N arrays in the student weights")
    inputs = keras.Input((weights["kernel_0"].shape[0],), name="features")
    h = inputs
    for i in range(n):
        layer = keras.layers.Dense(weights[f"kernel_{i}"].shape[1], activation="relu" if i < n - 1 else None,
                                   name=f"dense_{i}")  # fmt: skip
        h = layer(h)
        layer.set_weights([weights[f"kernel_{i}"], weights[f"bias_{i}"]])
    return keras.Model(inputs, h, name="glnn_student")


def to_tflite(model: keras.Model, representative: np.ndarray) -> dict[str, bytes]:
    """{'fp32': ..., 'int8': ...}: the int8 file is full-integer (weights, activations, input, output),
    its ranges taken from `representative` feature rows."""
    # pipelines.vision.convert takes representative uint8 images and divides them by 255; node features
    # are already the float inputs, so they are handed over times 255 (exact up to rounding).
    representative = np.asarray(representative, np.float32) * np.float32(255.0)
    return {"fp32": convert.to_tflite_fp32(model), "int8": convert.to_tflite_int8(model, representative)}
