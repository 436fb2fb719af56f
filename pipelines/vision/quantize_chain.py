"""Every model of a run to TFLite, each file evaluated in the TFLite runtime, and the budget
fallbacks of the compression chain's model: full-integer PTQ first; when it breaks the accuracy
budget, quantization-aware training; when that does too, selective quantization, keeping the
layers with the largest quantization error in float (1, 2, 4, ... up to `selective_max_layers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipelines.common import budget
from pipelines.vision.tfk import keras

log = logging.getLogger(__name__)
CHAIN_MODES = ("dynamic", "float16", "qat")


class TFLiteFiles:
    """The .tflite files of one run, in `folder`: each written, evaluated on the whole test set in
    the TFLite runtime and, when there is a reference accuracy, checked against the budget.
    `entries` maps each file's variant name to its figures (metrics/quantize.json's `models`)."""

    def __init__(self, folder: Path, recorded_folder: str | Path, ds, keras_models: Mapping[str, keras.Model],
                 keras_accuracy: Mapping[str, float], reference: float | None, max_drop: float,
                 eval_batch_size: int) -> None:  # fmt: skip
        self.folder, self.recorded_folder, self.ds = folder, Path(recorded_folder), ds
        self.keras_models, self.keras_accuracy = keras_models, keras_accuracy
        self.reference, self.max_drop, self.eval_batch_size = reference, max_drop, eval_batch_size
        self.entries: dict[str, dict] = {}
        self.curves: dict[str, list[float]] = {}  # per-epoch figures of what was trained (QAT)

    def add(self, variant: str, blob: bytes, dtype: str, source: str, **extra) -> dict:
        from pipelines.edge import evaluate
        from pipelines.vision.prune import gzip_size

        file = self.folder / f"{variant}.tflite"
        file.write_bytes(blob)
        acc = evaluate.accuracy(file, self.ds.x_test, self.ds.y_test, self.eval_batch_size)
        keras_acc = self.keras_accuracy[source]
        entry = {
            "file": str(self.recorded_folder / file.name),
            "dtype": dtype,
            "source_model": source,
            "accuracy": acc,
            "keras_accuracy": keras_acc,
            "accuracy_drop_points": round((keras_acc - acc) * 100, 3),
            "size_bytes": len(blob),
            "gzip_bytes": gzip_size(blob),
            "params": int(self.keras_models[source].count_params()),
            "tensor_dtypes": evaluate.tensor_dtypes(file),
            **extra,
        }
        if self.reference is not None:
            check = budget.check(variant, acc, self.reference, self.max_drop)
            entry.update(teacher_drop_points=check["drop_points"], within_budget=check["within"])
        self.entries[variant] = entry
        log.info("quantize: %s accuracy %.4f (Keras %.4f), %d bytes", variant, acc, keras_acc, len(blob))
        return entry


def convert_models(files: TFLiteFiles, representative: np.ndarray, float_layers: Sequence[str]) -> None:
    """Each Keras model to fp32 and full-integer int8, and, when it has every one of
    `float_layers`, to int8 with those layers in float (`<name>_mixed_int8`)."""
    from pipelines.vision import convert, quantize

    for name, model in files.keras_models.items():
        files.add(f"{name}_fp32", convert.to_tflite_fp32(model), "float32", name)
        files.add(f"{name}_int8", convert.to_tflite_int8(model, representative), "int8", name)
        if float_layers and all(layer in {x.name for x in model.layers} for layer in float_layers):
            keep = quantize.layer_tensors(model, representative[:100], list(float_layers))
            files.add(f"{name}_mixed_int8", quantize.selective_int8(model, representative, keep), "mixed", name,
                      float_layers=list(float_layers))  # fmt: skip


def run_chain(name: str, files: TFLiteFiles, modes: Sequence[str], representative: np.ndarray, p: dict, seed: int) -> dict:
    """The chain's model `name` in every extra mode, then the budget fallbacks: QAT, then selective
    int8. Returns the chain's record: every attempt, the file that met the budget (`final`) and what
    it gave up for it."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import convert, prune, quantize

    model, ds, models = files.keras_models[name], files.ds, files.entries
    reference, max_drop = files.reference, files.max_drop
    sparsity = prune.overall_sparsity(prune.kernel_sparsity(model))
    prune_preserve = sparsity > 0.01

    def qat() -> dict:
        seed_everything(seed)  # dropout masks and shuffling: the same file from the same inputs
        q = quantize.quantization_aware(model, prune_preserve)
        history = quantize.train_quantization_aware(q, ds.x_train, ds.y_train, p["qat_epochs"], p["qat_learning_rate"],
                                                    128, seed, min_steps=p["qat_min_steps"])  # fmt: skip
        files.curves.update({f"qat/{k}": v for k, v in history.items()})
        entry = files.add(f"{name}_qat_int8", convert.to_tflite_int8(q, representative), "int8", name,
                          prune_preserving=prune_preserve)  # fmt: skip
        entry["kernel_sparsity_kept"] = sparsity if prune_preserve else 0.0
        return entry

    if "dynamic" in modes:
        files.add(f"{name}_dynamic", quantize.to_tflite_dynamic(model), "dynamic", name)
    if "float16" in modes:
        files.add(f"{name}_float16", quantize.to_tflite_float16(model), "float16", name)
    if "qat" in modes:
        qat()

    ptq = models[f"{name}_int8"]
    attempts = [{"method": "ptq_int8", "model": f"{name}_int8", "accuracy": ptq["accuracy"],
                 "within_budget": ptq.get("within_budget")}]  # fmt: skip
    chain = {"model": name, "kernel_sparsity": sparsity, "attempts": attempts, "final": None, "given_up": None}
    if reference is None:
        chain["note"] = "no reference model: the budget was not checked"
        return chain
    if ptq["within_budget"]:
        chain["final"] = f"{name}_int8"
        return chain
    float_drop = round((reference - models[f"{name}_fp32"]["accuracy"]) * 100, 3)
    entry = models.get(f"{name}_qat_int8") or qat()
    attempts.append({"method": "qat_int8", "model": f"{name}_qat_int8", "accuracy": entry["accuracy"],
                     "within_budget": entry["within_budget"]})  # fmt: skip
    if entry["within_budget"]:
        chain["final"] = f"{name}_qat_int8"
        chain["given_up"] = "nothing: quantization-aware training recovered the accuracy"
        return chain
    if float_drop > max_drop:
        chain["note"] = (f"the float model is already {float_drop:.2f} points below the teacher (budget {max_drop}): "
                         "no quantization can bring it back; selective quantization was not tried")  # fmt: skip
        log.warning("quantize: %s", chain["note"])
        return chain
    errors = quantize.layer_errors(model, representative[:100])
    chain["layer_errors"] = errors
    k = 1
    while k <= min(p["selective_max_layers"], len(errors)):
        keep = [e["tensor_name"] for e in errors[:k]]
        variant = f"{name}_selective_int8"
        entry = files.add(variant, quantize.selective_int8(model, representative, keep), "mixed", name, float_layers=keep)
        attempts.append({"method": f"selective_int8 ({k} layers in float)", "model": variant, "float_layers": keep,
                         "accuracy": entry["accuracy"], "size_bytes": entry["size_bytes"],
                         "within_budget": entry["within_budget"]})  # fmt: skip
        if entry["within_budget"]:
            chain["final"] = variant
            chain["given_up"] = (f"{k} layer(s) kept in float ({', '.join(e['op'] for e in errors[:k])}): "
                                 f"{entry['size_bytes'] - ptq['size_bytes']:+d} bytes against full int8, float input "
                                 "and output, float kernels for those layers on the device")  # fmt: skip
            return chain
        k *= 2
    chain["note"] = "no attempt met the budget"
    log.warning("quantize: %s: no attempt met the budget of %.2f points", name, max_drop)
    return chain
