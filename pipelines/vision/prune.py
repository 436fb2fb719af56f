"""Magnitude pruning with tensorflow-model-optimization: wrap, fine-tune, strip, measure.

The schedule's update frequency comes from the real number of steps (a fixed frequency of 100
left sparsity at 0 when an epoch had 16 steps). tfmot never prunes DepthwiseConv2D, and 2:4
sparsity skips kernels with fewer than 4 input channels: every kernel's sparsity is measured
afterwards, never assumed.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.vision.tfk import keras, tfmot

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


@dataclass
class PrunedStudent:
    """A pruned, fine-tuned and stripped student, and how it was pruned."""

    model: keras.Model
    frequency_steps: int
    steps: int
    fine_tune_loss: str  # "distillation" or "labels"
    fine_tune_seconds: float
    history: dict = field(default_factory=dict)  # per-epoch loss, accuracy, val_accuracy of the fine-tuning


def prune_student(dense: keras.Model, ds, p: dict, distill_p: dict, teacher_path: str | Path, seed: int) -> PrunedStudent:
    """Wrap `dense` for magnitude pruning (`prune` params), fine-tune it with the distillation
    loss's logit terms (`distill_p`) or labels only (`prune.distill` false), then strip it."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision.distill import fit_student
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.teacher_targets import teacher_targets
    from pipelines.vision.tfk import load_model

    seed_everything(seed)
    loss = DistillLoss.from_params(distill_p).logits_only() if p["distill"] else DistillLoss()
    targets = None
    if loss.uses_teacher:
        targets = teacher_targets([load_model(teacher_path)], ds.x_train, distill_p["temperature"],
                                  distill_p["augment_flip"], standardise=distill_p["logit_standardize"])  # fmt: skip
    from pipelines.vision.train import passes_per_epoch

    passes = passes_per_epoch(len(ds.x_train), p["batch_size"], p["epochs"], p["min_steps"])
    steps = passes * int(np.ceil(len(ds.x_train) / p["batch_size"]))  # per epoch (fit_student makes the same passes)
    sched, frequency = schedule(p["schedule"], p["target_sparsity"], steps * p["epochs"], p["updates_per_epoch"], steps)
    wrapped = prunable(dense, sched, (2, 4) if p["m_by_n"] == "2:4" else None)
    t0 = time.time()
    history = fit_student(wrapped, ds.x_train, ds.y_train, ds.x_val, ds.y_val, loss,
                          {**p, "augment_flip": distill_p["augment_flip"]}, seed, targets=targets,
                          callbacks=[step_callback()])  # fmt: skip
    return PrunedStudent(strip(wrapped), frequency, steps * p["epochs"],
                         "distillation" if loss.uses_teacher else "labels", time.time() - t0, history)  # fmt: skip


def int8_dense_vs_pruned(dense: keras.Model, pruned: keras.Model, ds, bench_p: dict, seed: int) -> dict[str, dict]:
    """Both students as int8 TFLite files: raw and gzip size, accuracy in the TFLite runtime, and
    p50 latency measured interleaved in one run (so a slow phase of the machine hits both)."""
    from pipelines.edge import bench, evaluate
    from pipelines.vision import convert

    representative = ds.x_train[np.random.default_rng(seed).permutation(len(ds.x_train))[:200]]
    with tempfile.TemporaryDirectory() as tmpdir:
        files, sizes = {}, {}
        for name, model in (("dense", dense), ("pruned", pruned)):
            blob = convert.to_tflite_int8(model, representative)
            files[name] = Path(tmpdir) / f"{name}_int8.tflite"
            files[name].write_bytes(blob)
            sizes[name] = {"size_bytes": len(blob), "gzip_bytes": gzip_size(blob),
                           "accuracy": evaluate.accuracy(files[name], ds.x_test, ds.y_test)}  # fmt: skip
        timing = bench.interleaved(
            files, rounds=3, threads=bench_p["threads"], warmup_runs=bench_p["warmup_runs"],
            min_runs=bench_p["min_runs"], min_seconds=bench_p["min_seconds"], pin_cpu=bench_p["pin_cpu"], seed=seed,
        )  # fmt: skip
    for name in files:
        sizes[name].update({k: timing[name][k] for k in ("latency_p50_ms", "round_p50_ms")})
    return sizes
