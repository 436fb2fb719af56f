"""The fixed-size dense form of a graph that the exported graph classifier takes, and its run in
the TFLite runtime. NumPy and the runtime only: no torch, no TensorFlow.

A graph of n <= max_nodes nodes becomes three float32 arrays, each with a batch dimension of 1:
`x` (max_nodes x F, rows past n zero), `adjacency` (max_nodes x max_nodes, A[i, j] = number of
edges j -> i, so A @ h sums each node's incoming messages as PyG does) and `mask` (max_nodes x 1,
1 for the n real nodes). The model multiplies by the mask before pooling, so padding never counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.common.errors import DataError
from pipelines.edge import runtime
from pipelines.graph.store import GraphArrays

INPUTS = ("x", "adjacency", "mask")


def padded(a: GraphArrays, g: int, max_nodes: int) -> dict[str, np.ndarray]:
    """Graph `g` of `a` as the classifier's three inputs (batch of one)."""
    x, ei = a.graph(g)
    n = len(x)
    if n > max_nodes:
        raise DataError(f"{a.name}: graph {g} has {n} nodes; the exported classifier takes at most {max_nodes}")
    xs = np.zeros((1, max_nodes, x.shape[1]), np.float32)
    xs[0, :n] = x
    adj = np.zeros((1, max_nodes, max_nodes), np.float32)
    np.add.at(adj[0], (ei[1], ei[0]), 1.0)
    mask = np.zeros((1, max_nodes, 1), np.float32)
    mask[0, :n] = 1.0
    return {"x": xs, "adjacency": adj, "mask": mask}


class TFLiteGraphPredictor:
    """One graph's logits (float) from an exported graph classifier: pad, quantize, invoke, read."""

    def __init__(self, path: str | Path, a: GraphArrays, threads: int = 1) -> None:
        self.a = a
        self.interpreter = runtime.load(path, threads=threads)
        by_name = runtime.inputs_by_name(self.interpreter)
        missing = [n for n in INPUTS if n not in by_name]
        if missing:
            raise DataError(f"{path}: not an exported graph classifier (no input {', '.join(missing)})")
        self.inputs = {name: by_name[name] for name in INPUTS}
        self.out = self.interpreter.get_output_details()[0]
        self.max_nodes = int(self.inputs["x"]["shape"][1])

    def __call__(self, g: int) -> np.ndarray:
        for name, value in padded(self.a, g, self.max_nodes).items():
            detail = self.inputs[name]
            self.interpreter.set_tensor(detail["index"], runtime.quantize(value, detail))
        self.interpreter.invoke()
        return runtime.dequantize(self.interpreter.get_tensor(self.out["index"]), self.out)[0]


def predict(path: str | Path, a: GraphArrays, graphs: Sequence[int], threads: int = 2) -> np.ndarray:
    """Logits of the given graphs, one row each."""
    run = TFLiteGraphPredictor(path, a, threads=threads)
    return np.stack([run(int(g)) for g in graphs])
