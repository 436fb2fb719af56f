"""Load a Planetoid or TU dataset by name with PyG's own classes and turn it into plain arrays.

The source root holds `Planetoid/<Name>/raw/` and `TUDataset/<Name>/raw/` (the layout of
`../shared/datasets`). PyG writes a `processed/` folder beside `raw/`, so the raw files are
copied into a writable work folder first; a dataset absent from the source root is left to
PyG to download into the work folder (which fails with one line when there is no network).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from pipelines.common.errors import DataError
from pipelines.graph.store import GraphArrays, NodeArrays, row_normalize, stratified_folds

log = logging.getLogger(__name__)

PLANETOID = ("Cora", "CiteSeer", "PubMed")
# TU datasets with node labels or attributes (the models need node features)
TU = ("MUTAG", "PROTEINS", "ENZYMES", "NCI1", "NCI109", "DD", "PTC_MR", "BZR", "COX2", "DHFR", "AIDS", "Mutagenicity")
FAMILY_DIR = {"planetoid": "Planetoid", "tu": "TUDataset"}


def canonical_name(name: str, family: str, key: str) -> str:
    """The dataset's canonical spelling (matched case-insensitively), or one line listing the known names."""
    known = PLANETOID if family == "planetoid" else TU
    for k in known:
        if k.lower() == name.lower():
            return k
    kind = "node-level (Planetoid)" if family == "planetoid" else "graph-level (TU)"
    raise DataError(f"{key}: unknown dataset {name!r}; supported {kind} datasets: {', '.join(known)}")


def offline_names(source_root: Path) -> list[str]:
    """Names of the datasets whose raw files are present under the source root."""
    return sorted(p.parent.name for d in FAMILY_DIR.values() for p in (source_root / d).glob("*/raw") if p.is_dir())


def _stage_raw(source_root: Path, work_root: Path, family: str, name: str) -> Path:
    """Copy `<source>/<Family>/<name>/raw` into the work root; return the root to hand to PyG."""
    family_root = work_root / FAMILY_DIR[family]
    src = source_root / FAMILY_DIR[family] / name / "raw"
    if src.is_dir():
        dst = family_root / name / "raw"
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        log.warning("graph_data: %s not under %s; PyG will try to download it", name, source_root)
    return family_root


def _load(cls, family_root: Path, name: str, source_root: Path):
    try:
        return cls(str(family_root), name)
    except OSError as exc:  # urllib's URLError is an OSError: no network, no such file
        have = ", ".join(offline_names(source_root)) or "none"
        raise DataError(
            f"{name}: not under {source_root} and the download failed ({type(exc).__name__}); available offline: {have}"
        ) from None


def load_node_dataset(source_root: Path, work_root: Path, name: str, normalize: bool) -> NodeArrays:
    """A Planetoid dataset with its public split; features row-normalised when `normalize`."""
    from torch_geometric.datasets import Planetoid

    ds = _load(Planetoid, _stage_raw(source_root, work_root, "planetoid", name), name, source_root)
    d = ds[0]
    x = d.x.to_sparse_csr()
    indptr, indices = x.crow_indices().numpy().astype(np.int64), x.col_indices().numpy().astype(np.int64)
    values = x.values().numpy().astype(np.float32)
    if normalize:
        values = row_normalize(indptr, values)
    return NodeArrays(
        name=name, x_indptr=indptr, x_indices=indices, x_data=values, num_features=int(d.num_features),
        edge_index=d.edge_index.numpy().astype(np.int64), y=d.y.numpy().astype(np.int64),
        train_mask=d.train_mask.numpy(), val_mask=d.val_mask.numpy(), test_mask=d.test_mask.numpy(),
        num_classes=int(ds.num_classes),
    )  # fmt: skip


def load_graph_dataset(source_root: Path, work_root: Path, name: str, folds: int, seed: int) -> GraphArrays:
    """A TU dataset with a stratified `folds`-fold assignment drawn from `seed`."""
    from torch_geometric.datasets import TUDataset

    ds = _load(TUDataset, _stage_raw(source_root, work_root, "tu", name), name, source_root)
    if ds.num_node_features == 0:
        raise DataError(f"{name}: has no node features or labels; pick a TU dataset with node labels")
    xs, edges, node_ptr, edge_ptr = [], [], [0], [0]
    for g in ds:
        xs.append(g.x.numpy().astype(np.float32))
        edges.append(g.edge_index.numpy().astype(np.int64))
        node_ptr.append(node_ptr[-1] + g.num_nodes)
        edge_ptr.append(edge_ptr[-1] + g.edge_index.shape[1])
    y = ds.y.numpy().astype(np.int64)
    if np.bincount(y).min() < folds:
        raise DataError(f"{name}: a class has fewer than {folds} graphs; lower graph_data.folds")
    return GraphArrays(
        name=name, x=np.concatenate(xs), edge_index=np.concatenate(edges, axis=1),
        node_ptr=np.asarray(node_ptr, np.int64), edge_ptr=np.asarray(edge_ptr, np.int64), y=y,
        folds=stratified_folds(y, folds, seed), num_classes=int(ds.num_classes),
    )  # fmt: skip


def node_summary(a: NodeArrays) -> dict:
    deg = np.bincount(a.edge_index[1], minlength=a.num_nodes)
    return {
        "dataset": a.name, "task": "node", "nodes": a.num_nodes, "edges": int(a.edge_index.shape[1]),
        "features": a.num_features, "feature_nonzeros": int(len(a.x_data)), "classes": a.num_classes,
        "train": int(a.train_mask.sum()), "val": int(a.val_mask.sum()), "test": int(a.test_mask.sum()),
        "degree_mean": round(float(deg.mean()), 3), "degree_max": int(deg.max()),
    }  # fmt: skip


def graph_summary(a: GraphArrays) -> dict:
    sizes = np.diff(a.node_ptr)
    return {
        "dataset": a.name, "task": "graph", "graphs": a.num_graphs, "nodes_mean": round(float(sizes.mean()), 2),
        "edges_mean": round(float(np.diff(a.edge_ptr).mean()), 2), "features": int(a.x.shape[1]),
        "classes": a.num_classes, "class_counts": np.bincount(a.y).tolist(),
        "folds": int(a.folds.max() + 1), "fold_sizes": np.bincount(a.folds).tolist(),
    }  # fmt: skip
