"""Keras model to TFLite: fp32, and full-integer int8 (weights, activations, input and output)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from pipelines.common import quiet
from pipelines.vision.tfk import keras, tf
from pipelines.vision.train import to_float


def run(converter: tf.lite.TFLiteConverter) -> bytes:
    """The converted flatbuffer; the converter's MLIR chatter is held back (`pipelines.common.quiet`)."""
    with quiet.native_stderr():
        return converter.convert()


def to_tflite_fp32(model: keras.Model) -> bytes:
    return run(tf.lite.TFLiteConverter.from_keras_model(model))


def representative_dataset(images_uint8: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative data: one float image per call, as the model takes it."""
    representative = to_float(images_uint8)

    def samples() -> Iterator[list[np.ndarray]]:
        for i in range(len(representative)):
            yield [representative[i : i + 1]]

    return samples


def to_tflite_int8(model: keras.Model, representative: np.ndarray | Callable[[], Iterator[list[np.ndarray]]]) -> bytes:
    """Full-integer quantization (int8 inputs and output), its ranges from `representative`: uint8
    images, or a function yielding lists of float inputs as the model takes them (graph models).
    For a quantization-aware model the ranges come from training instead."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative if callable(representative) else representative_dataset(representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return run(converter)
