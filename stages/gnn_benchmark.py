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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_benchmark", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz, graph.npz)")
    ap.add_argument("--models", required=True, help="gnn_train's folder (weights, configs.json)")
    ap.add_argument("--tflite", required=True, help="gnn_export's folder of .tflite files")
    ap.add_argument("--export", required=True, help="metrics/gnn_export.json (which file is which model's)")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_benchmark.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "models": args.models, "tflite": args.tflite, "export": args.export}
    sections = ["graph", "gnn_benchmark", "benchmark", "devices"]
    with Stage("gnn_benchmark", args.params, sections=sections, inputs=inputs) as st:
        import torch

        from pipelines.edge import host
        from pipelines.graph import benchmark, store

        settings, bench_settings = st.params["gnn_benchmark"], st.params["benchmark"]
        files = sorted(Path(args.tflite).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.tflite}: no .tflite files to benchmark; run gnn_export first")
        tflite = benchmark.bench_tflite(files, bench_settings, st.params["devices"]["profiles"], st.seed)
        node, graph = store.load_halves(args.data)
        configs = io.read_json(Path(args.models) / "configs.json")
        exported = io.read_json(args.export)["models"]
        rng = np.random.default_rng(st.seed)
        torch.set_num_threads(bench_settings["threads"])  # the same thread count as the TFLite runtime
        metrics = {"host": host.fingerprint(), "threads": bench_settings["threads"], "tflite": tflite}
        if node is not None:
            gnns = benchmark.load_models(Path(args.models), configs, "node")
            student_files = [f for f in files if exported.get(f.stem, {}).get("task", "node") == "node"]
            per_node, fetch, cost = benchmark.per_node(node, gnns, student_files, bench_settings, settings, rng)
            metrics.update(dataset=node.name, per_node=per_node, fetch=fetch, gnn_cost=cost)
            int8 = per_node["reference"]
            for name in gnns:
                log.info("gnn_benchmark: %s per node p50 %.4f ms vs %s %.4f ms: %.1fx", name,
                         per_node["models"][name]["latency_p50_ms"], int8, per_node["models"][int8]["latency_p50_ms"],
                         per_node["speedup_vs_int8_student"][name])  # fmt: skip
        else:
            metrics["per_node"] = store.skipped("node")
        if graph is not None:
            graph_files = [f for f in files if exported.get(f.stem, {}).get("task") == "graph"]
            classifiers = benchmark.load_models(Path(args.models), configs, "graph")
            metrics["graph"] = benchmark.per_graph(graph, classifiers, graph_files, bench_settings, settings, rng)
            for name, t in metrics["graph"]["models"].items():
                log.info("gnn_benchmark: %s per graph p50 %.4f ms", name, t["latency_p50_ms"])
        else:
            metrics["graph"] = store.skipped("graph")
        st.finish(metrics, args.metrics)


if __name__ == "__main__":
    main()
