"""Accuracy of a .tflite classifier on uint8 images, in the TFLite runtime (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipelines.edge import runtime


def predict(path: str | Path, x: np.ndarray | Mapping[str, np.ndarray], batch_size: int = 256, threads: int = 2) -> np.ndarray:
    """Model outputs (dequantized to float32) for inputs `x`, in batches: float32 as they are,
    uint8 images scaled to [0, 1] batch by batch. A model with several inputs (the graph
    classifier's x, adjacency, mask) takes a mapping of its input names to arrays, one row per sample."""
    if isinstance(x, Mapping):
        return _predict_inputs(path, x, threads)
    interpreter = runtime.load(path, threads=threads)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs, current = [], None
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        batch = batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch
        if current != len(batch):
            interpreter.resize_tensor_input(inp["index"], [len(batch), *inp["shape"][1:]])
            interpreter.allocate_tensors()
            inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            current = len(batch)
        interpreter.set_tensor(inp["index"], runtime.quantize(batch, inp))
        interpreter.invoke()
        outputs.append(runtime.dequantize(interpreter.get_tensor(out["index"]), out))
    return np.concatenate(outputs)


def _predict_inputs(path: str | Path, x: Mapping[str, np.ndarray], threads: int) -> np.ndarray:
    """One invoke() per sample of a model whose inputs are named (batch of one each)."""
    from pipelines.common.errors import ModelFileError

    interpreter = runtime.load(path, threads=threads)
    inputs, out = runtime.inputs_by_name(interpreter), interpreter.get_output_details()[0]
    if set(inputs) != set(x):
        raise ModelFileError(f"{path}: takes inputs {', '.join(sorted(inputs))}, got {', '.join(sorted(x))}")
    rows = []
    for i in range(len(next(iter(x.values())))):
        for name, detail in inputs.items():
            interpreter.set_tensor(detail["index"], runtime.quantize(np.asarray(x[name][i : i + 1], np.float32), detail))
        interpreter.invoke()
        rows.append(runtime.dequantize(interpreter.get_tensor(out["index"]), out)[0])
    return np.stack(rows)


def accuracy(path: str | Path, x_uint8: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the model on uint8 images scaled to [0, 1], as in training."""
    return float((predict(path, x_uint8, batch_size).argmax(-1) == y).mean())


def tensor_dtypes(path: str | Path) -> dict:
    """dtype names of the model's inputs and outputs, and how many tensors hold each dtype."""
    interpreter = runtime.load(path)
    counts: dict[str, int] = {}
    for d in interpreter.get_tensor_details():
        name = np.dtype(d["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return {
        "inputs": [np.dtype(d["dtype"]).name for d in interpreter.get_input_details()],
        "outputs": [np.dtype(d["dtype"]).name for d in interpreter.get_output_details()],
        "tensors": counts,
    }
