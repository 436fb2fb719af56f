"""A suite of small models that span the cost model's regimes, for calibrating a host profile.

Compute-bound convolutions of several widths and depths (3x3, 5x5 and pointwise, from one
or three input channels, as grayscale and RGB images give, to 64; maps from 7 to 96 pixels), memory-bound depthwise convolutions and
fully-connected layers, and chains of tiny element-wise ops where per-operator overhead
dominates. None of them is a pipeline model, so the pipeline's models are predicted out
of sample.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipelines.vision.tfk import keras

L = keras.layers


def _conv_stack(size: int, cin: int, widths: tuple[int, ...], kernel: int = 3) -> keras.Model:
    x = inputs = keras.Input((size, size, cin))
    for w in widths:
        x = L.Conv2D(w, kernel, padding="same", activation="relu")(x)
    return keras.Model(inputs, x)


def _depthwise_stack(size: int, channels: int, depth: int) -> keras.Model:
    x = inputs = keras.Input((size, size, channels))
    for _ in range(depth):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    return keras.Model(inputs, x)


def _dense_stack(width: int, depth: int) -> keras.Model:
    x = inputs = keras.Input((width,))
    for _ in range(depth):
        x = L.Dense(width, activation="relu")(x)
    return keras.Model(inputs, x)


def _elementwise_chain(size: int, channels: int, length: int) -> keras.Model:
    x = inputs = keras.Input((size, size, channels))
    for i in range(length):
        x = L.Add()([x, inputs]) if i % 2 == 0 else L.ReLU(6.0)(x)
    return keras.Model(inputs, x)


def _pool_mix(size: int, channels: int) -> keras.Model:
    x = inputs = keras.Input((size, size, channels))
    x = L.Conv2D(channels, 1, activation="relu")(x)
    x = L.MaxPool2D()(x)
    x = L.Conv2D(channels * 2, 3, padding="same", activation="relu")(x)
    x = L.AveragePooling2D()(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(10)(x))


SUITE: dict[str, Callable[[], keras.Model]] = {
    "conv28_c1_w16": lambda: _conv_stack(28, 1, (16,)),
    "conv96_c3_w16": lambda: _conv_stack(96, 3, (16,)),  # an RGB image's first conv at a size users bring
    "conv32_c3_w32": lambda: _conv_stack(32, 3, (32,)),
    "conv28_c16_w32": lambda: _conv_stack(28, 16, (32,)),
    "conv14_c32_w64x2": lambda: _conv_stack(14, 32, (64, 64)),
    "conv7_c64_w128": lambda: _conv_stack(7, 64, (128,)),
    "conv32_c8_w8_k5": lambda: _conv_stack(32, 8, (8, 8), kernel=5),
    "conv20_c24_w48": lambda: _conv_stack(20, 24, (48,)),
    "conv10_c48_w96x2": lambda: _conv_stack(10, 48, (96, 96)),
    "pw28_c32_w64": lambda: _conv_stack(28, 32, (64,), kernel=1),
    "pw14_c64_w128": lambda: _conv_stack(14, 64, (128,), kernel=1),
    "dwise56_c32x2": lambda: _depthwise_stack(56, 32, 2),
    "dwise28_c64x3": lambda: _depthwise_stack(28, 64, 3),
    "dense512x2": lambda: _dense_stack(512, 2),
    "dense1024": lambda: _dense_stack(1024, 1),
    "eltwise8_c8x24": lambda: _elementwise_chain(8, 8, 24),
    "eltwise32_c16x8": lambda: _elementwise_chain(32, 16, 8),
    "poolmix28_c16": lambda: _pool_mix(28, 16),
}


def calibration_inputs(model: keras.Model, n: int, seed: int) -> np.ndarray:
    """uint8-valued samples for int8 calibration of a suite model (inputs scaled to [0, 1])."""
    shape = (n, *model.input_shape[1:])
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
