"""The graph pipeline's datasets, from a PyG dataset by name or from the user's own files, as
plain arrays (`pipelines.graph.store`).

`graph_data.node_dataset` and `graph_data.graph_dataset` each take one of:

- a PyG dataset by name: `Cora` (any Planetoid name) or `MUTAG` (any TU name), or `Class/Name` for
  any class of `torch_geometric.datasets` that reads a local root (`Amazon/Photo`,
  `CitationFull/Cora_ML`, `TUDataset/PROTEINS`), or `Class` alone when it takes no name
  (`KarateClub`). The raw files are read from `<graph_data.root>/<Class>/<Name>/raw` through a
  writable copy, since PyG writes `processed/` beside `raw/`.
- a path, relative to `graph_data.root` (DVC tracks that folder, so a changed file reruns the stage):
  - node level: an `.npz` with `x` (N x F), `y` (N,), `edge_index` (2 x E) and optional boolean
    `train_mask`, `val_mask`, `test_mask`; or a folder with `nodes.csv` (a header `id,label,<one
    column per feature>`, an optional `split` column of train/val/test) and `edges.csv` (two
    columns of node ids, one edge per row, an optional header);
  - graph level: a folder of `.npz` files, one graph each (`x`, `edge_index`, `y`), or a folder of
    TU-format text files (`<NAME>_A.txt`, `<NAME>_graph_indicator.txt`, `<NAME>_graph_labels.txt`
    and `<NAME>_node_labels.txt` or `<NAME>_node_attributes.txt`), read by PyG's `TUDataset`.
- null: that half of the graph pipeline is skipped.

Node datasets without split masks get a stratified random split (`graph_data.split`, seeded).
Every problem with the user's data is one `DataError` line naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import inspect
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.errors import DataError
from pipelines.graph.store import GraphArrays, NodeArrays, csr_from_dense, row_normalize, stratified_folds

log = logging.getLogger(__name__)

PLANETOID = ("Cora", "CiteSeer", "PubMed")
FILE_SUFFIXES = (".npz", ".csv")
MAX_DEGREE_FEATURE = 32  # graphs without node features get a one-hot degree, capped here
MASKS = ("train_mask", "val_mask", "test_mask")


# ---- where a dataset comes from ---------------------------------------------------------------


def source_of(spec: str, base: Path, key: str) -> tuple[str, Any]:
    """('path', Path) for the user's files, or ('pyg', (class name, dataset name or None))."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base / path
    if path.exists():
        return "path", path
    if spec.startswith((".", "/", "~")) or spec.endswith(FILE_SUFFIXES):
        raise DataError(f"{key}: {path}: no such file or folder")
    import torch_geometric.datasets as pyg_datasets

    cls_name, _, name = spec.partition("/")
    if name:
        if not inspect.isclass(getattr(pyg_datasets, cls_name, None)):
            raise DataError(f"{key}: {spec!r} is neither a file under {base} nor Class/Name of a "
                            f"torch_geometric.datasets class")  # fmt: skip
        return "pyg", (cls_name, name)
    planetoid = {n.lower(): n for n in PLANETOID}
    if key.endswith("node_dataset"):
        if spec.lower() in planetoid:
            return "pyg", ("Planetoid", planetoid[spec.lower()])
        if inspect.isclass(getattr(pyg_datasets, spec, None)):
            return "pyg", (spec, None)
        raise DataError(f"{key}: unknown dataset {spec!r}: give a Planetoid name ({', '.join(PLANETOID)}), "
                        "Class/Name of a torch_geometric.datasets class, or a path to your own .npz or folder")  # fmt: skip
    if inspect.isclass(getattr(pyg_datasets, spec, None)):
        return "pyg", (spec, None)
    return "pyg", ("TUDataset", spec)


def _match_dir(parent: Path, name: str) -> Path | None:
    """`parent/name`, its spelling matched case-insensitively, or None."""
    if (parent / name).is_dir():
        return parent / name
    found = [p for p in parent.glob("*") if p.is_dir() and p.name.lower() == name.lower()]
    return found[0] if found else None


def load_pyg(cls_name: str, name: str | None, source_root: Path, work_root: Path, key: str) -> Any:
    """A PyG dataset read from a writable copy of `<source_root>/<cls_name>[/<name>]`; a dataset
    not under the source root is left to PyG to download, which fails in one line offline."""
    import torch_geometric.datasets as pyg_datasets

    cls = getattr(pyg_datasets, cls_name)
    accepts = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if "name" in accepts:
        if name is None:
            raise DataError(f"{key}: {cls_name} needs a dataset name: write {cls_name}/<Name>")
        local = _match_dir(source_root / cls_name, name)
        name = local.name if local is not None else name
        kwargs["name"] = name
    elif name is not None:
        raise DataError(f"{key}: {cls_name} takes no dataset name; write {cls_name} alone")
    if "root" in accepts:
        src = source_root / cls_name / name if name else source_root / cls_name
        dst = work_root / cls_name
        target = dst / name if name else dst
        if src.is_dir():
            if src.resolve() != target.resolve():
                shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            log.warning("graph_data: %s not under %s; PyG will try to download it", src.relative_to(source_root), source_root)
        kwargs["root"] = str(dst)
    try:
        return cls(**kwargs)
    except OSError as exc:  # urllib's URLError is an OSError: no network, no such file
        have = ", ".join(offline_names(source_root)) or "none"
        raise DataError(f"{key}: {name or cls_name}: not under {source_root} and the download failed "
                        f"({type(exc).__name__}); available offline: {have}") from None  # fmt: skip
    except (ValueError, KeyError, IndexError, RuntimeError) as exc:
        raise DataError(f"{key}: {cls_name}({name or ''}) could not be read: {_first_line(exc)}") from None


def offline_names(source_root: Path) -> list[str]:
    """`Class/Name` of every dataset whose raw files are present under the source root."""
    return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in source_root.glob("*/*/raw") if p.is_dir())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ---- node classification ----------------------------------------------------------------------


def load_node_dataset(spec: str, base: Path, source_root: Path, work_root: Path, settings: Mapping[str, Any],
                      seed: int, key: str = "graph_data.node_dataset") -> NodeArrays:  # fmt: skip
    """The node dataset `spec` names, checked, made undirected when asked, split when it has no split."""
    kind, where = source_of(spec, base, key)
    if kind == "pyg":
        name = where[1] or where[0]
        arrays = _node_arrays_from_pyg(load_pyg(*where, source_root, work_root, key), name, key)
    elif where.is_dir():
        name, arrays = where.name, read_node_csv(where)
    elif where.suffix == ".npz":
        name, arrays = where.stem, read_npz(where, ("x", "y", "edge_index"), MASKS)
    else:
        raise DataError(f"{key}: {where}: a node dataset is an .npz file or a folder with nodes.csv and edges.csv")
    return node_arrays(name, arrays, settings, seed, str(where) if kind == "path" else key)


def _node_arrays_from_pyg(ds: Any, name: str, key: str) -> dict[str, np.ndarray]:
    if len(ds) != 1:
        raise DataError(f"{key}: {name} holds {len(ds)} graphs; node classification needs one graph "
                        "(use it as graph_data.graph_dataset instead)")  # fmt: skip
    d = ds[0]
    if d.x is None:
        raise DataError(f"{key}: {name} has no node features")
    out = {"x": d.x.to_dense().numpy() if d.x.is_sparse else d.x.numpy(), "y": d.y.numpy(),
           "edge_index": d.edge_index.numpy()}  # fmt: skip
    for m in MASKS:
        mask = getattr(d, m, None)
        if mask is not None:
            mask = mask.numpy()
            if mask.ndim == 2:  # several public splits (WikiCS, the heterophily sets): the first one
                log.info("graph_data: %s has %d %s columns; using the first", name, mask.shape[1], m)
                mask = mask[:, 0]
            out[m] = mask
    partial = [m for m in MASKS if m in out]
    if 0 < len(partial) < 3:  # KarateClub has a train_mask only: the split comes from graph_data.split
        log.info("graph_data: %s has %s only; using graph_data.split instead", name, ", ".join(partial))
        for m in partial:
            del out[m]
    return out


def read_npz(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; a missing required one is one line naming what the file has."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    missing = [k for k in required if k not in z.files]
    if missing:
        raise DataError(f"{path}: missing array {', '.join(missing)} (the file has {', '.join(z.files) or 'none'}; "
                        f"needs {', '.join(required)}{', optional ' + ', '.join(optional) if optional else ''})")  # fmt: skip
    return {k: z[k] for k in (*required, *optional) if k in z.files}


def read_node_csv(folder: Path) -> dict[str, np.ndarray]:
    """nodes.csv (id, label, features..., optional split) and edges.csv (source, target) as arrays."""
    nodes_path, edges_path = folder / "nodes.csv", folder / "edges.csv"
    for p in (nodes_path, edges_path):
        if not p.is_file():
            raise DataError(f"{folder}: {p.name} not found; a node dataset folder holds nodes.csv and edges.csv")
    with nodes_path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "label"]:
        raise DataError(f"{nodes_path}: the header must start with id,label (then one column per feature)")
    header = [c.strip().lower() for c in rows[0]]
    split_col = header.index("split") if "split" in header else None
    feature_cols = [i for i in range(2, len(header)) if i != split_col]
    if not feature_cols:
        raise DataError(f"{nodes_path}: no feature columns after id,label")
    ids: dict[str, int] = {}
    labels, feats, splits = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{nodes_path}:{line}: {len(row)} columns, the header has {len(header)}")
        node = row[0].strip()
        if node in ids:
            raise DataError(f"{nodes_path}:{line}: node id {node!r} listed twice")
        if not row[1].strip():
            raise DataError(f"{nodes_path}:{line}: node {node!r} has no label")
        ids[node] = len(ids)
        labels.append(row[1].strip())
        try:
            feats.append([float(row[i]) for i in feature_cols])
        except ValueError:
            raise DataError(f"{nodes_path}:{line}: a feature of node {node!r} is not a number") from None
        if split_col is not None:
            splits.append(row[split_col].strip().lower())
    if not ids:
        raise DataError(f"{nodes_path}: no nodes")
    out = {"x": np.asarray(feats, np.float32), "y": _label_ids(labels, nodes_path),
           "edge_index": _read_edges_csv(edges_path, ids)}  # fmt: skip
    if split_col is not None:
        bad = sorted(set(splits) - {"train", "val", "test"})
        if bad:
            raise DataError(f"{nodes_path}: split must be train, val or test, got {', '.join(map(repr, bad))}")
        for m in MASKS:
            out[m] = np.asarray([s == m.split("_")[0] for s in splits])
    return out


def _label_ids(labels: list[str], path: Path) -> np.ndarray:
    """Class ids 0..C-1: integer labels kept as they are, any other labels numbered in sorted order."""
    try:
        return np.asarray([int(v) for v in labels], np.int64)
    except ValueError:
        names = sorted(set(labels))
        log.info("graph_data: %s: %d class names, numbered in sorted order: %s", path, len(names), ", ".join(names[:10]))
        index = {n: i for i, n in enumerate(names)}
        return np.asarray([index[v] for v in labels], np.int64)


def _read_edges_csv(path: Path, ids: Mapping[str, int]) -> np.ndarray:
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and rows[0][0].strip() not in ids and rows[0][0].strip().lower() in ("source", "src", "from", "u", "id1"):
        rows = rows[1:]  # a header row
    edges = []
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DataError(f"{path}:{line}: an edge needs two node ids, got {','.join(row)!r}")
        a, b = row[0].strip(), row[1].strip()
        for node in (a, b):
            if node not in ids:
                raise DataError(f"{path}:{line}: node {node!r} is not in nodes.csv")
        edges.append((ids[a], ids[b]))
    return np.asarray(edges, np.int64).reshape(-1, 2).T


def check_graph(x: np.ndarray, edge_index: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (n x F, finite) and an edge index (2 x E, ids in 0..n-1) as float32 and int64, or one line."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where}: x must be a numeric (nodes x features) array, got shape {x.shape} of {x.dtype}")
    if len(x) == 0:
        raise DataError(f"{where}: the graph has no nodes")
    if not np.isfinite(x).all():
        raise DataError(f"{where}: x holds NaN or infinite values")
    ei = np.asarray(edge_index)
    if ei.size == 0:
        ei = ei.reshape(2, 0)
    if ei.ndim != 2 or ei.shape[0] != 2:
        if ei.ndim == 2 and ei.shape[1] == 2:
            ei = ei.T  # an (E, 2) edge list
        else:
            raise DataError(f"{where}: edge_index must be a 2 x E array of node ids, got shape {ei.shape}")
    if ei.size and not np.issubdtype(ei.dtype, np.integer):
        if not np.array_equal(ei, np.round(ei)):
            raise DataError(f"{where}: edge_index holds non-integer node ids")
    ei = ei.astype(np.int64)
    if ei.size and (ei.min() < 0 or ei.max() >= len(x)):
        raise DataError(f"{where}: edge index out of range: node ids must be 0..{len(x) - 1} "
                        f"(x has {len(x)} rows), found {int(ei.min())}..{int(ei.max())}")  # fmt: skip
    return x.astype(np.float32), ei


def class_labels(y: Any, count: int, where: str) -> np.ndarray:
    """Integer class ids 0..C-1, one per item, or one line saying what is wrong."""
    y = np.asarray(y).reshape(-1)
    if len(y) != count:
        raise DataError(f"{where}: {len(y)} labels for {count} {'nodes' if count else 'items'}")
    if not np.issubdtype(y.dtype, np.number) or not np.array_equal(y, np.round(y)):
        raise DataError(f"{where}: labels must be integer class ids")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{where}: labels must be class ids >= 0, found {int(y.min())}")
    if len(np.unique(y)) < 2:
        raise DataError(f"{where}: every label is {int(y[0])}; classification needs at least two classes")
    return y


def undirected(edge_index: np.ndarray) -> np.ndarray:
    """Every edge in both directions, duplicates dropped, sorted by (source, target); an edge list
    that is that already is returned as it is (its order kept)."""
    both = np.unique(np.concatenate([edge_index, edge_index[::-1]], axis=1), axis=1) if edge_index.size else edge_index
    if both.shape == edge_index.shape and np.array_equal(np.unique(edge_index, axis=1), both):
        return edge_index
    return both


def random_split(y: np.ndarray, fractions: Sequence[float], seed: int, where: str) -> tuple[np.ndarray, ...]:
    """Stratified train/val/test masks in the given proportions, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    masks = [np.zeros(len(y), bool) for _ in range(3)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = max(1, int(round(fractions[0] * len(idx))))
        n_val = int(round(fractions[1] * len(idx)))
        masks[0][idx[:n_train]] = True
        masks[1][idx[n_train : n_train + n_val]] = True
        masks[2][idx[n_train + n_val :]] = True
    for m, name in zip(masks, ("training", "validation", "test"), strict=True):
        if not m.any():
            raise DataError(f"{where}: the {name} split is empty with graph_data.split {list(fractions)} "
                            f"and {len(y)} nodes; change graph_data.split")  # fmt: skip
    return tuple(masks)


def node_arrays(name: str, a: Mapping[str, np.ndarray], settings: Mapping[str, Any], seed: int, where: str) -> NodeArrays:
    """Checked NodeArrays from raw arrays: features, labels, edges, and the given split or a random one."""
    x, edge_index = check_graph(a["x"], a["edge_index"], where)
    y = class_labels(a["y"], len(x), where)
    if settings["undirected"]:
        edge_index = undirected(edge_index)
    given = [m for m in MASKS if m in a]
    if given and len(given) < 3:
        raise DataError(f"{where}: has {', '.join(given)} but not {', '.join(sorted(set(MASKS) - set(given)))}; "
                        "give all three masks or none (then graph_data.split applies)")  # fmt: skip
    if given:
        masks = []
        for m in MASKS:
            mask = np.asarray(a[m]).reshape(-1)
            if len(mask) != len(x) or not (mask.dtype == bool or np.isin(mask, (0, 1)).all()):
                raise DataError(f"{where}: {m} must be {len(x)} booleans, one per node, got {mask.shape} of {mask.dtype}")
            if not mask.any():
                raise DataError(f"{where}: {m} selects no node")
            masks.append(mask.astype(bool))
        if (masks[0] & masks[2]).any() or (masks[1] & masks[2]).any():
            raise DataError(f"{where}: the test nodes overlap the training or validation nodes")
    else:
        masks = list(random_split(y, settings["split"], seed, where))
        log.info("graph_data: %s has no split; stratified %s split from seed %d", name, settings["split"], seed)
    indptr, indices, values = csr_from_dense(x)
    if settings["normalize_features"]:
        values = row_normalize(indptr, values)
    if edge_index.shape[1] == 0:
        log.warning("graph_data: %s has no edges: every GNN sees each node alone", name)
    return NodeArrays(
        name=name, x_indptr=indptr, x_indices=indices, x_data=values, num_features=int(x.shape[1]),
        edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
        num_classes=int(y.max() + 1),
    )  # fmt: skip


# ---- graph classification ---------------------------------------------------------------------


def load_graph_dataset(spec: str, base: Path, source_root: Path, work_root: Path, settings: Mapping[str, Any],
                       seed: int, key: str = "graph_data.graph_dataset") -> GraphArrays:  # fmt: skip
    """The graph dataset `spec` names, checked, with a stratified `folds`-fold assignment from `seed`."""
    kind, where = source_of(spec, base, key)
    if kind == "path":
        if not where.is_dir():
            raise DataError(f"{key}: {where}: a graph dataset is a folder of .npz graphs or of TU-format text files")
        tu = sorted(where.glob("*_A.txt"))
        if tu:
            prefix = tu[0].name[: -len("_A.txt")]
            raw = work_root / "TUDataset" / prefix / "raw"
            shutil.copytree(where, raw, dirs_exist_ok=True)
            name, graphs = prefix, _graphs_from_pyg(load_pyg("TUDataset", prefix, work_root, work_root, key), str(where))
        else:
            name, graphs = where.name, read_graph_folder(where)
    else:
        name = where[1] or where[0]
        graphs = _graphs_from_pyg(load_pyg(*where, source_root, work_root, key), name)
    return graph_arrays(name, graphs, settings["folds"], seed, str(where) if kind == "path" else key)


def _graphs_from_pyg(ds: Any, where: str) -> list[dict[str, np.ndarray]]:
    out = []
    try:
        for g in ds:
            if g.y is None:
                raise DataError(f"{where}: graph {len(out)} has no label")
            x = g.x.numpy() if g.x is not None else np.zeros((int(g.num_nodes or 0), 0), np.float32)
            out.append({"x": x, "edge_index": g.edge_index.numpy(), "y": g.y.numpy()})
    except (ValueError, KeyError, IndexError, RuntimeError) as exc:  # files PyG read but cannot split into graphs
        raise DataError(f"{where}: graph {len(out)} could not be read: {_first_line(exc)}") from None
    return out


def read_graph_folder(folder: Path) -> list[dict[str, np.ndarray]]:
    """One graph per .npz file (x, edge_index, y), in file-name order."""
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DataError(f"{folder}: no .npz graphs and no TU-format <NAME>_A.txt file")
    return [read_npz(f, ("x", "edge_index", "y")) for f in files]


def degree_features(edge_index: np.ndarray, n: int, cap: int = MAX_DEGREE_FEATURE) -> np.ndarray:
    """One-hot in-degree (cap and above in the last column): features for graphs that have none."""
    deg = np.minimum(np.bincount(edge_index[1], minlength=n), cap)
    out = np.zeros((n, cap + 1), np.float32)
    out[np.arange(n), deg] = 1.0
    return out


def graph_arrays(name: str, graphs: Sequence[Mapping[str, np.ndarray]], folds: int, seed: int, where: str) -> GraphArrays:
    """Checked GraphArrays: every graph non-empty, one feature width, integer labels, enough per class for the folds."""
    if len(graphs) < 2:
        raise DataError(f"{where}: {len(graphs)} graph(s); graph classification needs a dataset of graphs")
    no_features = all(np.asarray(g["x"]).size == 0 for g in graphs)
    xs, edges, labels, width = [], [], [], 0
    for i, g in enumerate(graphs):
        at = f"{where}: graph {i}"
        x = np.asarray(g["x"])
        if no_features:
            n = len(x) if x.ndim == 2 and len(x) else int(np.asarray(g["edge_index"]).max(initial=-1)) + 1
            x = np.zeros((n, 1), np.float32)  # replaced by degree features below
        x, ei = check_graph(x, g["edge_index"], at)
        if i == 0:
            width = x.shape[1]
        elif x.shape[1] != width:
            raise DataError(f"{at}: {x.shape[1]} node features, the first graph has {width}")
        label = np.asarray(g["y"]).reshape(-1)
        if label.size != 1:
            raise DataError(f"{at}: y must be one class id per graph, got {label.size} values")
        xs.append(degree_features(ei, len(x)) if no_features else x)
        edges.append(ei)
        labels.append(label[0])
    if no_features:
        log.info("graph_data: %s has no node features; one-hot node degree (capped at %d) instead", name, MAX_DEGREE_FEATURE)
    y = class_labels(labels, len(graphs), where)
    counts = np.bincount(y)
    if counts[counts > 0].min() < folds:
        raise DataError(f"{where}: a class has {int(counts[counts > 0].min())} graphs, fewer than "
                        f"graph_data.folds ({folds}); lower graph_data.folds or add graphs")  # fmt: skip
    sizes = [len(x) for x in xs]
    return GraphArrays(
        name=name, x=np.concatenate(xs), edge_index=np.concatenate(edges, axis=1),
        node_ptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        edge_ptr=np.concatenate([[0], np.cumsum([e.shape[1] for e in edges])]).astype(np.int64), y=y,
        folds=stratified_folds(y, folds, seed), num_classes=int(y.max() + 1),
    )  # fmt: skip


# ---- what graph_data records ------------------------------------------------------------------


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
    train, val, test = a.split()
    return {
        "dataset": a.name, "task": "graph", "graphs": a.num_graphs, "nodes_mean": round(float(sizes.mean()), 2),
        "nodes_max": int(sizes.max()), "edges_mean": round(float(np.diff(a.edge_ptr).mean()), 2),
        "features": int(a.x.shape[1]), "classes": a.num_classes, "class_counts": np.bincount(a.y).tolist(),
        "folds": int(a.folds.max() + 1), "fold_sizes": np.bincount(a.folds).tolist(),
        "deploy_split": {"train": int(train.sum()), "val": int(val.sum()), "test": int(test.sum()),
                         "rule": "test: fold 0, validation: fold 1, training: the other folds"},
    }  # fmt: skip
