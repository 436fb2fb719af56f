"""Per-node and per-graph inference of the graph pipeline's models, timed side by side in one
process: every node GNN (k-hop neighbourhood fetch + forward, PyTorch) against the distilled
student's .tflite files (LiteRT), node by node, and the graph classifiers graph by graph; and the
student's files through the same edge harness as the vision benchmark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.edge import bench
from pipelines.graph import inference, models, store, train

INCLUDES = {
    "gnn": ("k-hop neighbourhood fetch (PyG k_hop_subgraph over the full edge list, k = layers; gather of the "
            "subgraph's float32 feature rows) + GNN forward on the subgraph (PyTorch, eval, no_grad) + the node's logits"),
    "fetch": "the k-hop neighbourhood fetch alone (subgraph extraction + feature gather), no forward",
    "student_int8": ("the node's own feature row, stored as int8, copied into the input tensor + invoke() + "
                     "reading the int8 output (LiteRT)"),
    "student_int8_quantize_input": "as student_int8, but the float32 feature row is quantized in NumPy on every call",
    "student_fp32": "the node's own float32 feature row copied into the input tensor + invoke() + reading the output (LiteRT)",
    "graph": "one graph already in memory (features, edges) + forward + logits (PyTorch, eval, no_grad, batch of one graph)",
    "graph_tflite": ("one graph already in memory padded to the file's max_nodes (features, dense adjacency built "
                     "from its edge list, node mask), quantized when int8, + invoke() + the logits (LiteRT)"),
}  # fmt: skip
PROTOCOL = (
    "one process, CPU-pinned, torch and LiteRT at benchmark.threads threads; `rounds` passes over the same "
    "test nodes. latency_*: in each round every model answers all nodes back to back after 20 untimed calls "
    "(warm caches, as when serving a stream of requests), the model order rotated per round. "
    "cold_latency_p50_ms: every node goes to every model in turn, so each call starts with caches the other "
    "models just used. Each p50 is the median of the quietest round (the rounds are the windows of the "
    "vision benchmark's p50); the other figures are over all calls."
)


def bench_tflite(files: list[Path], p: dict, profiles: dict, seed: int) -> dict:
    """The edge harness on each file, the same function the vision `benchmark` stage runs."""
    from pipelines.edge import measure

    includes = "invoke() alone on a synthetic input (the edge harness, as in the vision benchmark)"
    return {f.stem: {**measure.measured_and_modelled(f, profiles, seed=seed, **bench.settings(p)), "latency_includes": includes}
            for f in files}  # fmt: skip


def load_models(folder: Path, configs: Mapping[str, Mapping[str, Any]], task: str) -> dict[str, torch.nn.Module]:
    """gnn_train's saved models of one task (`node`: the GNNs, not the plain MLP; `graph`), in eval mode."""
    out = {}
    for name, cfg in configs.items():
        if cfg["task"] != task or cfg.get("conv") == "mlp":
            continue
        build = models.build_node_model if task == "node" else models.build_graph_model
        model = build(cfg, cfg["in_dim"], cfg["out_dim"])
        model.load_state_dict(torch.load(folder / f"{name}.pt", weights_only=True))
        out[name] = model.eval()
    return out


def per_node(arrays: store.NodeArrays, gnns: Mapping[str, torch.nn.Module], files: Sequence[Path], hb: Mapping[str, Any],
             p: Mapping[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Per-node latency of every GNN (with its neighbourhood fetch) and of every student file, warm
    and cold, on `p['nodes']` test nodes; each GNN's subgraph answer checked against the full
    graph's. Returns (per_node metrics, neighbourhood fetch statistics per hop count, GNN costs)."""
    data = train.node_tensors(arrays)
    test_nodes = np.flatnonzero(arrays.test_mask)
    nodes = [int(n) for n in rng.permutation(test_nodes)[: p["nodes"]]]
    x_np = arrays.dense_features()
    predictors = {name: inference.NodePredictor(m, data.x_dense, data.edge_index) for name, m in gnns.items()}
    fns = dict(predictors)
    first = next(iter(predictors.values()))
    fns["fetch"] = first.fetch
    for f in files:
        fns[f.stem] = inference.TFLiteNodePredictor(f, x_np, threads=hb["threads"], stored_int8=True)
        if fns[f.stem].quantized:
            fns[f"{f.stem}_quantize_input"] = inference.TFLiteNodePredictor(f, x_np, threads=hb["threads"],
                                                                            stored_int8=False)  # fmt: skip
    # a subgraph must give the node the same answer as the whole graph, or the timing is of the wrong thing
    agreement = {}
    for name, pred in predictors.items():
        full = pred.full_graph()
        agreement[name] = round(float(max(np.abs(pred(n) - full[n]).max() for n in nodes[:50])), 8)
    warmup = min(20, len(nodes))
    with bench.pinned(pinned_cpus(hb)):
        warm = inference.time_rounds(fns, nodes, p["rounds"], warmup_nodes=warmup, interleave="model")
        cold = inference.time_rounds(fns, nodes, p["rounds"], warmup_nodes=warmup, interleave="node")
    timings = {}
    for name, ms in warm.items():
        kind = "gnn" if name in gnns else name if name in INCLUDES else "student_fp32"
        timings[name] = {**inference.latency_stats(ms, p["rounds"]), "includes": INCLUDES[kind],
                         "cold_latency_p50_ms": inference.latency_stats(cold[name], p["rounds"])["latency_p50_ms"]}  # fmt: skip
        if name in gnns:
            timings[name]["hops"] = predictors[name].hops
            timings[name]["subgraph_max_abs_logit_diff"] = agreement[name]
    timings["fetch"]["hops"] = first.hops
    int8 = next((f.stem for f in files if "int8" in f.stem), files[0].stem)

    def ratio(name: str, key: str) -> float:
        return round(timings[name][key] / timings[int8][key], 2)

    hops = sorted({pr.hops for pr in predictors.values()})
    fetch = {h: inference.fetch_stats(data.edge_index, arrays.num_nodes, arrays.num_features, h, test_nodes) for h in hops}
    cost = {}
    for name, m in gnns.items():
        f = fetch[predictors[name].hops]
        cost[name] = inference.gnn_cost(m, f["subgraph_nodes"]["mean"], f["subgraph_edges"]["mean"])
    result = {"nodes": len(nodes), "rounds": p["rounds"], "threads": hb["threads"], "reference": int8,
              "protocol": PROTOCOL, "models": timings,
              "speedup_vs_int8_student": {name: ratio(name, "latency_p50_ms") for name in gnns},
              "speedup_vs_int8_student_cold": {name: ratio(name, "cold_latency_p50_ms") for name in gnns}}  # fmt: skip
    return result, {str(h): v for h, v in fetch.items()}, cost


def per_graph(graph_arrays: store.GraphArrays, classifiers: Mapping[str, torch.nn.Module], files: Sequence[Path],
              hb: Mapping[str, Any], p: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    """Per-graph latency of every graph classifier (PyTorch) and of its exported files (LiteRT), all
    timed in one run on `p['graphs']` graphs already in memory, with the vision benchmark's p50."""
    from pipelines.graph import dense

    graphs = train.graph_data_list(graph_arrays)
    order = [int(g) for g in rng.permutation(graph_arrays.num_graphs)[: p["graphs"]]]
    fns = {name: inference.GraphPredictor(gm, graphs) for name, gm in classifiers.items()}
    fns.update({f.stem: dense.TFLiteGraphPredictor(f, graph_arrays, threads=hb["threads"]) for f in files})
    with bench.pinned(pinned_cpus(hb)):
        ms = inference.time_rounds(fns, order, p["rounds"], warmup_nodes=min(10, len(order)))
    mean_nodes = round(float(np.diff(graph_arrays.node_ptr)[order].mean()), 2)
    timing = {name: {**inference.latency_stats(v, p["rounds"]), "includes": INCLUDES["graph" if name in classifiers else "graph_tflite"],
                     "mean_graph_nodes": mean_nodes} for name, v in ms.items()}  # fmt: skip
    return {"dataset": graph_arrays.name, "graphs": len(order), "max_nodes": graph_arrays.max_nodes, "models": timing}


def pinned_cpus(hb: Mapping[str, Any]) -> set[int] | None:
    """The cores the benchmark pins to (`benchmark.pin_cpu` onwards, one per thread), or None."""
    return None if hb["pin_cpu"] is None else set(range(hb["pin_cpu"], hb["pin_cpu"] + hb["threads"]))
