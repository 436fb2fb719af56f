"""Magnitude pruning with tensorflow-model-optimization: wrap, fine-tune, strip, measure.

The schedule's update frequency comes from the real number of steps (a fixed frequency of 100
left sparsity at 0 when an epoch had 16 steps). tfmot never prunes DepthwiseConv2D, and 2:4
sparsity skips kernels with fewer than 4 input channels: every kernel's sparsity is measured
afterwards, never assumed.
"""

from __future__ import annotations

import gzip

import numpy as np
import tensorflow_model_optimization as tfmot

from pipelines.vision.tfk import keras

KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def schedule(kind: str, target: float, total_steps: int, updates_per_epoch: int, steps_per_epoch: int):
    """PolynomialDecay from 0 to `target` over the first 80 % of the steps, or ConstantSparsity.

    The mask is updated `updates_per_epoch` times per epoch; the polynomial's end step is a
    multiple of that frequency, so the last update lands on it and reaches `target` exactly.
    """
    frequency = max(1, steps_per_epoch // updates_per_epoch)
    if kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=frequency), frequency
    end = max(frequency, (int(0.8 * total_steps) // frequency) * frequency)
    return (
        tfmot.sparsity.keras.PolynomialDecay(0.0, target, begin_step=0, end_step=end, frequency=frequency),
        frequency,
    )


def prunable(model: keras.Model, pruning_schedule, m_by_n: tuple[int, int] | None = None) -> keras.Model:
    """The model with every layer wrapped for magnitude pruning (a copy: `model` is untouched)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=pruning_schedule, sparsity_m_by_n=m_by_n)


def step_callback() -> keras.callbacks.Callback:
    """tfmot's UpdatePruningStep: without it training fails with an opaque assert_greater_equal."""
    return tfmot.sparsity.keras.UpdatePruningStep()


def strip(model: keras.Model) -> keras.Model:
    return tfmot.sparsity.keras.strip_pruning(model)


def kernel_sparsity(model: keras.Model) -> dict[str, dict]:
    """Per layer with a kernel: its kind, weight count and measured fraction of exact zeros."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, KERNEL_LAYERS):
            w = layer.get_weights()[0]
            out[layer.name] = {
                "kind": type(layer).__name__,
                "weights": int(w.size),
                "sparsity": round(float(np.mean(w == 0)), 6),
                "two_of_four": bool(is_m_by_n(w)),
            }
    return out


def is_m_by_n(kernel: np.ndarray, m: int = 2, n: int = 4) -> bool:
    """Whether every block of `n` consecutive input-channel weights holds at least `m` zeros (tfmot's
    m_by_n layout: blocks along the input-channel axis, the second to last of the kernel)."""
    cin = kernel.shape[-2] if kernel.ndim > 1 else kernel.shape[0]
    if cin % n:
        return False
    w = np.moveaxis(kernel, -2, -1) if kernel.ndim > 1 else kernel
    blocks = w.reshape(-1, n)
    return bool(np.all(np.sum(blocks == 0, axis=-1) >= m))


def overall_sparsity(per_kernel: dict[str, dict], kinds: tuple[str, ...] = ("Conv2D", "Dense")) -> float:
    """Zeros over all weights of the prunable kinds (tfmot does not prune depthwise kernels)."""
    total = sum(k["weights"] for k in per_kernel.values() if k["kind"] in kinds)
    zeros = sum(k["weights"] * k["sparsity"] for k in per_kernel.values() if k["kind"] in kinds)
    return round(zeros / max(total, 1), 6)


def gzip_size(blob: bytes) -> int:
    """Bytes after gzip -9: what pruning's zeros save in a download or an app bundle."""
    return len(gzip.compress(blob, compresslevel=9, mtime=0))
