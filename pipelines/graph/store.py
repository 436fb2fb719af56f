"""The prepared graph datasets as plain NumPy arrays in one `.npz` each (no torch, no PyG).

`graph_data` writes them; every later stage reads them, including the TensorFlow export
stage, which must not import torch. Node features are kept in CSR form: Planetoid features
are bag-of-words vectors that are ~99 % zeros, and the CSR copy is also what makes training
fast (dropout and the first matmul touch only the non-zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.common.errors import DataError

NODE_FILE, GRAPH_FILE = "node.npz", "graph.npz"  # in graph_data's folder; either is absent when its dataset is null


@dataclass
class NodeArrays:
    """A node-classification graph: CSR features, directed edge list, labels, public split."""

    name: str
    x_indptr: np.ndarray  # (N + 1,) int64
    x_indices: np.ndarray  # (nnz,) int64
    x_data: np.ndarray  # (nnz,) float32
    num_features: int
    edge_index: np.ndarray  # (2, E) int64, both directions listed
    y: np.ndarray  # (N,) int64
    train_mask: np.ndarray  # (N,) bool
    val_mask: np.ndarray
    test_mask: np.ndarray
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return len(self.y)

    def dense_features(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 feature rows (all rows by default), densified from the CSR copy."""
        rows = np.arange(self.num_nodes) if rows is None else np.asarray(rows)
        out = np.zeros((len(rows), self.num_features), np.float32)
        for i, r in enumerate(rows):
            lo, hi = self.x_indptr[r], self.x_indptr[r + 1]
            out[i, self.x_indices[lo:hi]] = self.x_data[lo:hi]
        return out

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, kind="node", **{k: v for k, v in self.__dict__.items()})

    @staticmethod
    def load(path: str | Path) -> NodeArrays:
        z = _open(path, "node")
        ints = ("num_features", "num_classes")
        return NodeArrays(**{k: (str(z[k]) if k == "name" else int(z[k]) if k in ints else z[k])
                             for k in NodeArrays.__dataclass_fields__})  # fmt: skip


@dataclass
class GraphArrays:
    """A graph-classification dataset: all graphs' nodes and edges concatenated, with offsets."""

    name: str
    x: np.ndarray  # (total nodes, F) float32
    edge_index: np.ndarray  # (2, total edges) int64, node ids local to each graph
    node_ptr: np.ndarray  # (G + 1,) graph g owns nodes node_ptr[g] .. node_ptr[g+1]-1
    edge_ptr: np.ndarray  # (G + 1,)
    y: np.ndarray  # (G,) int64
    folds: np.ndarray  # (G,) the cross-validation fold each graph is tested in
    num_classes: int

    @property
    def num_graphs(self) -> int:
        return len(self.y)

    def graph(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(features, local edge_index) of graph `g`."""
        return (self.x[self.node_ptr[g] : self.node_ptr[g + 1]],
                self.edge_index[:, self.edge_ptr[g] : self.edge_ptr[g + 1]])  # fmt: skip

    @property
    def max_nodes(self) -> int:
        return int(np.diff(self.node_ptr).max())

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, val, test) masks over the graphs for the deployed classifier, from the folds:
        fold 0 is tested, fold 1 validates, the other folds train."""
        return self.folds > 1, self.folds == 1, self.folds == 0

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, kind="graph", **{k: v for k, v in self.__dict__.items()})

    @staticmethod
    def load(path: str | Path) -> GraphArrays:
        z = _open(path, "graph")
        return GraphArrays(**{k: (str(z[k]) if k == "name" else int(z[k]) if k == "num_classes" else z[k])
                              for k in GraphArrays.__dataclass_fields__})  # fmt: skip


def skipped(half: str) -> dict[str, str]:
    """What a stage writes in place of the outputs of a half whose dataset is null."""
    return {"skipped": f"graph_data.{half}_dataset is null: no {half}-level models"}


def load_halves(folder: str | Path) -> tuple[NodeArrays | None, GraphArrays | None]:
    """graph_data's node and graph datasets; None for a half whose dataset is null (not prepared)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: prepared graph data not found; run the graph_data stage first")
    node = NodeArrays.load(folder / NODE_FILE) if (folder / NODE_FILE).is_file() else None
    graph = GraphArrays.load(folder / GRAPH_FILE) if (folder / GRAPH_FILE).is_file() else None
    return node, graph


def _open(path: str | Path, kind: str):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared graph data not found; run the graph_data stage first")
    z = np.load(path, allow_pickle=False)
    if str(z.get("kind", "")) != kind:
        raise DataError(f"{path}: not a prepared {kind}-level graph dataset; run the graph_data stage again")
    return z


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per sample: every class spread over the k folds as evenly as it divides, seeded."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        # continue the round-robin where the previous class stopped, so fold sizes differ by <= 1
        folds[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    return folds


def csr_from_dense(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, values) of a dense float matrix's non-zeros, row by row."""
    rows, cols = np.nonzero(x)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(x)))]).astype(np.int64)
    return indptr, cols.astype(np.int64), x[rows, cols].astype(np.float32)


def row_normalize(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """CSR values divided by their row sum (rows summing to 0 stay 0): GCN's feature preprocessing."""
    counts = np.diff(indptr)
    sums = np.bincount(np.repeat(np.arange(len(counts)), counts), weights=data, minlength=len(counts))
    scale = np.repeat(1.0 / np.where(sums == 0, 1.0, sums), counts)
    return (data * scale).astype(np.float32)
