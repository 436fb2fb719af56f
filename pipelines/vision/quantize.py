"""Quantization beyond full-integer PTQ: dynamic range, float16, quantization-aware training
(pruning-preserving when the model is sparse), and selective quantization that keeps the layers
with the largest quantization error in float (TFLite's quantization debugger).

Plain functions: Keras models and arrays in, `.tflite` bytes out.
"""

from __future__ import annotations

import csv
import io
import logging
import math

import numpy as np

from pipelines.vision import convert
from pipelines.vision.convert import representative_dataset
from pipelines.vision.tfk import keras, tf, tfmot

log = logging.getLogger(__name__)


def to_tflite_dynamic(model: keras.Model) -> bytes:
    """Dynamic-range quantization: int8 weights, float activations (no representative data)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return convert.run(converter)


def to_tflite_float16(model: keras.Model) -> bytes:
    """float16 weights, dequantized to float32 at load time on CPUs."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return convert.run(converter)


def quantization_aware(model: keras.Model, prune_preserve: bool) -> keras.Model:
    """The model with fake-quantization inserted; with `prune_preserve`, tfmot's
    Default8BitPrunePreserveQuantizeScheme keeps the zero weights at zero (plain quantize_model
    would fill them in again)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if not prune_preserve:
        return tfmot.quantization.keras.quantize_model(clone)
    annotated = tfmot.quantization.keras.quantize_annotate_model(clone)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    return tfmot.quantization.keras.quantize_apply(annotated, scheme)


def train_quantization_aware(
    qat: keras.Model, x_uint8: np.ndarray, y: np.ndarray, epochs: int, learning_rate: float, batch_size: int, seed: int,
    min_steps: int = 0,
) -> dict[str, list[float]]:
    """Fine-tune a quantization-aware model on labels (cosine-decayed Adam, shuffled each pass),
    each epoch as many passes as reach `min_steps` steps in all (`train.passes_per_epoch`).
    Returns the per-epoch history (loss)."""
    from pipelines.vision.train import passes_per_epoch

    passes = passes_per_epoch(len(x_uint8), batch_size, epochs, min_steps)
    steps = passes * int(np.ceil(len(x_uint8) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(epochs * steps, 1))
    qat.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = tf.data.Dataset.from_tensor_slices((x_uint8, y.astype(np.int64)))
    data = data.shuffle(len(x_uint8), seed=seed).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y)).batch(batch_size)
    history = qat.fit(data.repeat(passes) if passes > 1 else data, epochs=epochs, verbose=0).history
    return {k: [float(v) for v in vs] for k, vs in history.items()}


def _debug_converter(model: keras.Model, representative_uint8: np.ndarray):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(representative_uint8)
    return converter


def layer_errors(model: keras.Model, representative_uint8: np.ndarray) -> list[dict]:
    """Per quantized op, from TFLite's quantization debugger: its output tensor name and the RMSE of
    its int8 output against float, in units of the quantization scale; worst first."""
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=_debug_converter(model, representative_uint8),
        debug_dataset=representative_dataset(representative_uint8),
    )
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r["scale"]) or 1.0
        rows.append({
            "op": r["op_name"],
            "tensor_name": r["tensor_name"],
            "rmse_per_scale": round(math.sqrt(max(float(r["mean_squared_error"]), 0.0)) / scale, 6),
        })  # fmt: skip
    return sorted(rows, key=lambda r: -r["rmse_per_scale"])


def layer_tensors(model: keras.Model, representative_uint8: np.ndarray, layers: list[str]) -> list[str]:
    """The debugger's output tensor names of the ops that Keras layers `layers` became (a layer fused
    with its BatchNorm and ReLU is one op, named after all three)."""
    missing = [name for name in layers if name not in {layer.name for layer in model.layers}]
    if missing:
        raise ValueError(f"{model.name} has no layer named {', '.join(missing)}")
    names = [e["tensor_name"] for e in layer_errors(model, representative_uint8)]
    return [n for n in names if any(f"/{layer}/" in n for layer in layers)]


def selective_int8(model: keras.Model, representative_uint8: np.ndarray, keep_float: list[str]) -> bytes:
    """int8 everywhere except the ops whose output tensors are named in `keep_float` (the
    `tensor_name` column of the debugger's statistics; its NumericVerify keys would be ignored).
    The file keeps float input and output: the debugger's conversion ignores int8 I/O types."""
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=_debug_converter(model, representative_uint8),
        debug_dataset=representative_dataset(representative_uint8),
        debug_options=options,
    )
    return debugger.get_nondebug_quantized_model()
