"""Per-node inference as a device would run it, and what it costs.

A GNN answers for one node only after fetching its k-hop neighbourhood (k = number of layers):
the subgraph's node ids, its edges and every member's feature row. The distilled MLP reads the
node's own feature row and nothing else. `NodePredictor` and `TFLiteNodePredictor` are the two
sides, timed in one run by `time_rounds`; `fetch_stats` and `gnn_cost` give the
modelled side (nodes, edges and bytes fetched, MACs) from the graph's real degree distribution.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import k_hop_subgraph

from pipelines.edge import runtime
from pipelines.graph.models import MLP, GraphGNN, NodeGNN, graph_inputs

FLOAT_BYTES = 4
INDEX_BYTES = 8  # int64 node ids in edge_index


class NodePredictor:
    """One node's logits from a node GNN: k-hop subgraph extraction, feature gather, forward.

    GCN's edge weights come from the whole graph's degrees, so the subgraph's answer for its
    centre node equals the full-graph answer exactly (the subgraph's own degrees would not)."""

    def __init__(self, model: NodeGNN, x: torch.Tensor, edge_index: torch.Tensor) -> None:
        self.model = model.eval()
        self.x = x  # dense float32 features of every node: what the device fetches from
        self.num_nodes = x.shape[0]
        self.hops = len(model.convs)
        self.edge_index, self.edge_weight = edge_index, None
        if model.conv == "gcn":
            self.edge_index, self.edge_weight = graph_inputs("gcn", edge_index, self.num_nodes)

    def fetch(self, node: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(features, edges or adjacency, edge_weight, centre position) of the node's k-hop subgraph."""
        subset, ei, centre, mask = k_hop_subgraph(node, self.hops, self.edge_index, relabel_nodes=True,
                                                  num_nodes=self.num_nodes)  # fmt: skip
        if self.edge_weight is not None:
            return self.x[subset], ei, self.edge_weight[mask], centre
        ei, _ = graph_inputs(self.model.conv, ei, len(subset))
        return self.x[subset], ei, None, centre

    @torch.no_grad()
    def full_graph(self) -> np.ndarray:
        """Logits of every node from the whole graph at once (what the subgraph answers must equal)."""
        ei, ew = (self.edge_index, self.edge_weight) if self.edge_weight is not None else graph_inputs(
            self.model.conv, self.edge_index, self.num_nodes)  # fmt: skip
        return self.model(self.x, ei, ew).numpy()

    @torch.no_grad()
    def __call__(self, node: int) -> np.ndarray:
        x, ei, ew, centre = self.fetch(node)
        return self.model(x, ei, ew)[centre].numpy()[0]


class TFLiteNodePredictor:
    """One node's outputs from a .tflite MLP in the TFLite runtime (batch of one feature row).

    `stored_int8=True` quantizes every feature row once, up front, with the model's input scale:
    the device keeps its features as int8. Otherwise float rows are quantized per call in NumPy."""

    def __init__(self, path: str | Path, x: np.ndarray, threads: int = 1, stored_int8: bool = True) -> None:
        self.interpreter = runtime.load(path, threads=threads)
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]
        self.quantized = np.issubdtype(np.dtype(self.inp["dtype"]), np.integer)
        self.stored = self.quantized and stored_int8
        self.x = runtime.quantize(x, self.inp) if self.stored else x.astype(np.float32)

    def __call__(self, node: int) -> np.ndarray:
        row = self.x[node : node + 1]
        if self.quantized and not self.stored:
            row = runtime.quantize(row, self.inp)
        self.interpreter.set_tensor(self.inp["index"], row)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out["index"])[0]


def time_rounds(fns: Mapping[str, Callable[[int], Any]], nodes: Sequence[int], rounds: int,
                warmup_nodes: int = 20, interleave: str = "model") -> dict[str, np.ndarray]:  # fmt: skip
    """Milliseconds per call of each function over `rounds` passes, all in this one run.

    interleave="model": in each round every function serves all `nodes` back to back (after
    `warmup_nodes` untimed calls), the order of functions rotated per round; a model keeps its
    weights in cache, as on a device answering a stream of requests. interleave="node": every node
    goes to every function in turn, so each call starts with caches the other models just used.
    Either way, a slow phase of the machine falls on all contenders alike."""
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}

    def timed(name: str, node: int) -> None:
        t = time.perf_counter_ns()
        fns[name](node)
        samples[name].append((time.perf_counter_ns() - t) / 1e6)

    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        if interleave == "model":
            for name in order:
                for node in list(nodes)[:warmup_nodes]:
                    fns[name](node)
                for node in nodes:
                    timed(name, node)
        elif interleave == "node":
            for node in list(nodes)[:warmup_nodes] if r == 0 else []:
                for name in order:
                    fns[name](node)
            for i, node in enumerate(nodes):
                for name in order[i % len(order):] + order[: i % len(order)]:
                    timed(name, node)
        else:
            raise ValueError(f"interleave must be 'model' or 'node', got {interleave!r}")
    return {n: np.asarray(v) for n, v in samples.items()}


def latency_stats(ms: np.ndarray, windows: int) -> dict[str, float]:
    """`bench.latency_stats` of per-call milliseconds from `time_rounds`, each round one window (the
    quietest round's median is the p50, as in the vision benchmark)."""
    from pipelines.edge.bench import latency_stats as edge_latency_stats

    return edge_latency_stats(np.array_split(np.asarray(ms), windows))


def fetch_stats(edge_index: torch.Tensor, num_nodes: int, num_features: int, hops: int,
                nodes: Sequence[int]) -> dict[str, Any]:  # fmt: skip
    """What a k-hop neighbourhood fetch reads for each of `nodes`: subgraph nodes, edges and bytes."""
    sizes, edges = [], []
    for n in nodes:
        subset, ei, _, _ = k_hop_subgraph(int(n), hops, edge_index, num_nodes=num_nodes)
        sizes.append(len(subset))
        edges.append(ei.shape[1])
    sizes_a, edges_a = np.asarray(sizes), np.asarray(edges)
    feat = sizes_a * num_features * FLOAT_BYTES
    edge_bytes = edges_a * 2 * INDEX_BYTES

    def dist(v: np.ndarray) -> dict[str, float]:
        return {"mean": round(float(v.mean()), 2), "p50": float(np.percentile(v, 50)),
                "p90": float(np.percentile(v, 90)), "max": int(v.max())}  # fmt: skip

    return {"hops": hops, "nodes_measured": len(sizes), "subgraph_nodes": dist(sizes_a), "subgraph_edges": dist(edges_a),
            "feature_bytes": dist(feat), "edge_bytes": dist(edge_bytes),
            "mlp_feature_bytes": num_features * FLOAT_BYTES}  # fmt: skip


def gnn_cost(model: nn.Module, subgraph_nodes: float, subgraph_edges: float) -> dict[str, float]:
    """Modelled per-node cost of a node GNN run on a subgraph of the given (mean) size.

    MACs: every layer transforms every subgraph node (dense matmul) and aggregates over every
    edge. Memory access: weights once, fetched features and edge list, and each layer's
    activations written then read (float32), in the sense of ShuffleNet V2's MAC."""
    n, e = float(subgraph_nodes), float(subgraph_edges)
    macs, act_bytes = 0.0, 0.0
    layers = model.convs if isinstance(model, NodeGNN) else model.lins
    for layer in layers:
        params = [p for name, p in layer.named_parameters() if p.dim() == 2]
        linear = sum(p.numel() for p in params)
        out_dim = params[-1].shape[0]
        if isinstance(model, MLP):
            macs += linear
            act_bytes += 2 * out_dim * FLOAT_BYTES
            continue
        macs += n * linear + e * out_dim
        act_bytes += 2 * n * out_dim * FLOAT_BYTES
    weight_bytes = sum(p.numel() for p in model.parameters()) * FLOAT_BYTES
    in_dim = next(p for p in layers[0].parameters() if p.dim() == 2).shape[1]
    fetch = in_dim * FLOAT_BYTES if isinstance(model, MLP) else n * in_dim * FLOAT_BYTES + e * 2 * INDEX_BYTES
    return {"macs": int(macs), "memory_access_bytes": int(weight_bytes + fetch + act_bytes),
            "weight_bytes": int(weight_bytes), "fetch_bytes": int(fetch)}  # fmt: skip


class GraphPredictor:
    """One graph's logits from a graph classifier (batch of one graph, eval mode)."""

    def __init__(self, model: GraphGNN, graphs: list) -> None:
        self.model, self.graphs = model.eval(), graphs

    @torch.no_grad()
    def __call__(self, g: int) -> np.ndarray:
        d = self.graphs[g]
        return self.model(d.x, d.edge_index, torch.zeros(d.num_nodes, dtype=torch.long)).numpy()[0]
