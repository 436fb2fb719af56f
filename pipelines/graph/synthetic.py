"""Generated graph datasets in every format `graph_data` reads, to try the graph pipeline on data
that is not Cora or MUTAG without downloading anything (`edgesmith make-graph-dataset`).

- Node classification, a contextual stochastic block model: each class is a community (edges
  inside a class `homophily` times as likely as across) and a topic, a word distribution from
  which each node draws a bag-of-words feature vector, mixed with uniform noise. Features alone
  classify some nodes; the neighbourhood adds the rest, as on citation graphs. Written as an `.npz`
  (x, y, edge_index; no split, so `graph_data.split` applies) or as `nodes.csv` + `edges.csv`.
- Graph classification, motifs: a random tree with one motif attached, the class being the
  motif (house, 5-cycle, 4-clique, ...), so only structure tells the classes apart; the nodes
  carry a random label as noise. Written as a folder of `.npz` graphs, or as TU-format text files.

Pure NumPy, seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

MOTIFS = {
    "house": [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)],
    "cycle5": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)],
    "clique4": [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)],
    "star5": [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)],
    "path6": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)],
    "grid2x3": [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)],
}


def node_graph(nodes: int, classes: int, features: int, seed: int, degree: float = 4.0, homophily: float = 8.0,
               words: int = 12, noise: float = 0.6) -> dict[str, np.ndarray]:  # fmt: skip
    """x (bag of words, 0/1), y, edge_index (both directions) of a contextual SBM."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, nodes)
    # edge probabilities so that the mean degree is `degree`, `homophily` x more likely within a class
    p_out = degree / (nodes * (homophily / classes + (classes - 1) / classes))
    p_in = homophily * p_out
    kept = 1 / classes + (1 - 1 / classes) / homophily  # the share of candidate pairs the thinning keeps
    m = int(degree * nodes / 2 / kept)  # candidate pairs, thinned by the class-dependent probability
    a, b = rng.integers(0, nodes, m), rng.integers(0, nodes, m)
    keep = (a != b) & (rng.random(m) < np.where(y[a] == y[b], p_in, p_out) / max(p_in, p_out))
    pairs = np.unique(np.sort(np.stack([a[keep], b[keep]]), axis=0), axis=1)
    edge_index = np.concatenate([pairs, pairs[::-1]], axis=1)
    topics = rng.dirichlet(np.full(features, 0.05), classes)  # each class: a few words it uses often
    x = np.zeros((nodes, features), np.float32)
    for i in range(nodes):
        topic = np.where(rng.random(words) < noise, rng.integers(0, features, words),
                         rng.choice(features, words, p=topics[y[i]]))  # fmt: skip
        x[i, topic] = 1.0
    return {"x": x, "y": y.astype(np.int64), "edge_index": edge_index.astype(np.int64)}


def motif_graphs(count: int, classes: int, seed: int, min_nodes: int = 8, max_nodes: int = 20,
                 node_labels: int = 3) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """`count` graphs: a random tree of min..max nodes with the class's motif attached to one node."""
    if not 2 <= classes <= len(MOTIFS):
        raise ValueError(f"classes must be 2..{len(MOTIFS)} (one motif each)")
    rng = np.random.default_rng(seed)
    names = list(MOTIFS)[:classes]
    out = []
    for g in range(count):
        label = g % classes
        n_tree = int(rng.integers(min_nodes, max_nodes + 1))
        edges = [(int(rng.integers(0, i)), i) for i in range(1, n_tree)]  # a random recursive tree
        motif = MOTIFS[names[label]]
        size = 1 + max(max(e) for e in motif)
        edges += [(n_tree + u, n_tree + v) for u, v in motif]
        edges.append((int(rng.integers(0, n_tree)), n_tree + int(rng.integers(0, size))))
        n = n_tree + size
        perm = rng.permutation(n)  # node order says nothing about the motif
        e = perm[np.asarray(edges).T]
        x = np.eye(node_labels, dtype=np.float32)[rng.integers(0, node_labels, n)]
        out.append({"x": x, "edge_index": np.concatenate([e, e[::-1]], axis=1).astype(np.int64),
                    "y": np.asarray(label, np.int64)})  # fmt: skip
    return out


def write_node_npz(path: str | Path, d: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **d)
    return path


def write_node_csv(folder: str | Path, d: dict[str, np.ndarray]) -> Path:
    """nodes.csv (id, label as a class name, one column per feature) and edges.csv (source,target, once per pair)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "nodes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", *(f"w{j}" for j in range(d["x"].shape[1]))])
        for i, (row, label) in enumerate(zip(d["x"], d["y"], strict=True)):
            w.writerow([f"n{i}", f"class_{chr(ord('a') + int(label))}", *(int(v) for v in row)])
    with (folder / "edges.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"])
        for a, b in d["edge_index"].T:
            if a < b:
                w.writerow([f"n{a}", f"n{b}"])
    return folder


def write_graph_folder(folder: str | Path, graphs: list[dict[str, np.ndarray]]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, g in enumerate(graphs):
        np.savez_compressed(folder / f"graph_{i:05d}.npz", **g)
    return folder


def write_tu(folder: str | Path, name: str, graphs: list[dict[str, np.ndarray]]) -> Path:
    """The TU benchmark format: <name>_A.txt (1-based edges), _graph_indicator, _graph_labels, _node_labels."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    edges, indicator, node_labels, offset = [], [], [], 0
    for g, d in enumerate(graphs):
        n = len(d["x"])
        edges += [f"{a + offset + 1}, {b + offset + 1}" for a, b in d["edge_index"].T]
        indicator += [str(g + 1)] * n
        node_labels += [str(int(v)) for v in d["x"].argmax(1)]
        offset += n
    (folder / f"{name}_A.txt").write_text("\n".join(edges) + "\n")
    (folder / f"{name}_graph_indicator.txt").write_text("\n".join(indicator) + "\n")
    (folder / f"{name}_graph_labels.txt").write_text("\n".join(str(int(d["y"])) for d in graphs) + "\n")
    (folder / f"{name}_node_labels.txt").write_text("\n".join(node_labels) + "\n")
    return folder
