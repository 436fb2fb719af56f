"""Stage `gnn_benchmark`: the student's .tflite files through the edge harness (measured latency,
flatbuffer analysis, predicted latency per device profile), then per-node inference of every node
GNN (k-hop neighbourhood fetch + forward, PyTorch) and of the student (LiteRT) timed interleaved,
node by node, in this one process; and per-graph inference of the graph classifiers.
PyTorch and the TFLite runtime only: no TensorFlow in this stage."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_benchmark")

INCLUDES = {
    "gnn": ("k-hop neighbourhood fetch (PyG k_hop_subgraph over the full edge list, k = layers; gather of the "
            "subgraph's float32 feature rows) + GNN forward on the subgraph (PyTorch, eval, no_grad) + the node's logits"),
    "fetch": "the k-hop neighbourhood fetch alone (subgraph extraction + feature gather), no forward",
    "student_int8": ("the node's own feature row, stored as int8, copied into the input tensor + invoke() + "
                     "reading the int8 output (LiteRT)"),
    "student_int8_quantize_input": "as student_int8, but the float32 feature row is quantized in NumPy on every call",
    "student_fp32": "the node's own float32 feature row copied into the input tensor + invoke() + reading the output (LiteRT)",
    "graph": "one graph already in memory (features, edges) + forward + logits (PyTorch, eval, no_grad, batch of one graph)",
}  # fmt: skip
PROTOCOL = (
    "one process, CPU-pinned, torch and LiteRT at benchmark.threads threads; `rounds` passes over the same "
    "test nodes. latency_*: in each round every model answers all nodes back to back after 20 untimed calls "
    "(warm caches, as when serving a stream of requests), the model order rotated per round. "
    "cold_latency_p50_ms: every node goes to every model in turn, so each call starts with caches the other "
    "models just used."
)


def bench_tflite(files: list[Path], p: dict, profiles: dict, seed: int) -> dict:
    """The edge harness on each file, the same function the vision `benchmark` stage runs."""
    from pipelines.edge import bench, measure

    includes = "invoke() alone on a synthetic input (the edge harness, as in the vision benchmark)"
    return {f.stem: {**measure.measure(f, profiles, seed=seed, **bench.settings(p)), "latency_includes": includes}
            for f in files}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_benchmark", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz, graph.npz)")
    ap.add_argument("--models", required=True, help="gnn_train's folder (weights, configs.json)")
    ap.add_argument("--tflite", required=True, help="gnn_export's folder of .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_benchmark.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "models": args.models, "tflite": args.tflite}
    sections = ["graph", "gnn_benchmark", "benchmark", "devices"]
    with Stage("gnn_benchmark", args.params, sections=sections, inputs=inputs) as st:
        import torch

        from pipelines.edge import bench, host
        from pipelines.graph import inference, models, store, train

        p, hb = st.params["gnn_benchmark"], st.params["benchmark"]
        files = sorted(Path(args.tflite).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.tflite}: no .tflite files to benchmark; run gnn_export first")
        tflite = bench_tflite(files, hb, st.params["devices"]["profiles"], st.seed)

        arrays = store.NodeArrays.load(Path(args.data) / "node.npz")
        graph_arrays = store.GraphArrays.load(Path(args.data) / "graph.npz")
        data = train.node_tensors(arrays)
        configs = io.read_json(Path(args.models) / "configs.json")
        gnns = {}
        for name, cfg in configs.items():
            if cfg["task"] == "node" and cfg["conv"] != "mlp":
                model = models.build_node_model(cfg, cfg["in_dim"], cfg["out_dim"])
                model.load_state_dict(torch.load(Path(args.models) / f"{name}.pt", weights_only=True))
                gnns[name] = model.eval()
        rng = np.random.default_rng(st.seed)
        test_nodes = np.flatnonzero(arrays.test_mask)
        nodes = [int(n) for n in rng.permutation(test_nodes)[: p["nodes"]]]
        x_np = arrays.dense_features()

        torch.set_num_threads(hb["threads"])  # the same thread count as the TFLite runtime
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
        cpus = None if hb["pin_cpu"] is None else set(range(hb["pin_cpu"], hb["pin_cpu"] + hb["threads"]))
        warmup = min(20, len(nodes))
        with bench.pinned(cpus):
            warm = inference.time_rounds(fns, nodes, p["rounds"], warmup_nodes=warmup, interleave="model")
            cold = inference.time_rounds(fns, nodes, p["rounds"], warmup_nodes=warmup, interleave="node")
        per_node = {}
        for name, ms in warm.items():
            kind = "gnn" if name in gnns else name if name in INCLUDES else "student_fp32"
            per_node[name] = {**inference.latency_stats(ms), "includes": INCLUDES[kind],
                              "cold_latency_p50_ms": inference.latency_stats(cold[name])["latency_p50_ms"]}  # fmt: skip
            if name in gnns:
                per_node[name]["hops"] = predictors[name].hops
                per_node[name]["subgraph_max_abs_logit_diff"] = agreement[name]
        per_node["fetch"]["hops"] = first.hops
        int8 = next((f.stem for f in files if "int8" in f.stem), files[0].stem)

        def ratio(name: str, key: str) -> float:
            return round(per_node[name][key] / per_node[int8][key], 2)

        speedup = {name: ratio(name, "latency_p50_ms") for name in gnns}
        speedup_cold = {name: ratio(name, "cold_latency_p50_ms") for name in gnns}

        hops = sorted({pr.hops for pr in predictors.values()})
        fetch = {h: inference.fetch_stats(data.edge_index, arrays.num_nodes, arrays.num_features, h, test_nodes) for h in hops}
        cost = {}
        for name, m in gnns.items():
            f = fetch[predictors[name].hops]
            cost[name] = inference.gnn_cost(m, f["subgraph_nodes"]["mean"], f["subgraph_edges"]["mean"])

        graph_timing = {}
        graphs = train.graph_data_list(graph_arrays)
        order = [int(g) for g in rng.permutation(graph_arrays.num_graphs)[: p["graphs"]]]
        for name, cfg in configs.items():
            if cfg["task"] != "graph":
                continue
            gm = models.build_graph_model(cfg, cfg["in_dim"], cfg["out_dim"])
            gm.load_state_dict(torch.load(Path(args.models) / f"{name}.pt", weights_only=True))
            with bench.pinned(cpus):
                ms = inference.time_rounds({name: inference.GraphPredictor(gm, graphs)}, order, p["rounds"],
                                           warmup_nodes=min(10, len(order)))[name]  # fmt: skip
            graph_timing[name] = {**inference.latency_stats(ms), "includes": INCLUDES["graph"],
                                  "mean_graph_nodes": round(float(np.diff(graph_arrays.node_ptr)[order].mean()), 2)}  # fmt: skip

        metrics = {
            "host": host.fingerprint(), "threads": hb["threads"], "dataset": arrays.name,
            "tflite": tflite,
            "per_node": {"nodes": len(nodes), "rounds": p["rounds"], "threads": hb["threads"], "reference": int8,
                         "protocol": PROTOCOL, "models": per_node, "speedup_vs_int8_student": speedup,
                         "speedup_vs_int8_student_cold": speedup_cold},
            "fetch": {str(h): v for h, v in fetch.items()}, "gnn_cost": cost,
            "graph": {"dataset": graph_arrays.name, "graphs": len(order), "models": graph_timing},
        }  # fmt: skip
        for name in gnns:
            log.info("gnn_benchmark: %s per node p50 %.4f ms vs %s %.4f ms: %.1fx", name, per_node[name]["latency_p50_ms"],
                     int8, per_node[int8]["latency_p50_ms"], speedup[name])  # fmt: skip
        st.finish(metrics, args.metrics)


if __name__ == "__main__":
    main()
