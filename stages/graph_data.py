"""Stage `graph_data`: load the node-level (Planetoid) and graph-level (TU) datasets with PyG's own
classes from a writable copy of the dataset root, and save each as one .npz of plain arrays."""

from __future__ import annotations

import argparse
import logging
import shutil

from pipelines.common import io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.graph_data")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.graph_data", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for node.npz (node dataset) and graph.npz (graph dataset)")
    ap.add_argument("--metrics", required=True, help="metrics/graph_data.json")
    args = ap.parse_args(argv)
    with Stage("graph_data", args.params, sections=["graph", "graph_data"]) as st:
        from pipelines.graph import data

        settings = st.params["graph_data"]
        node_name = data.canonical_name(settings["node_dataset"], "planetoid", "graph_data.node_dataset")
        graph_name = data.canonical_name(settings["graph_dataset"], "tu", "graph_data.graph_dataset")
        source = st.resolve(settings["root"])
        with io.atomic_dir(args.out) as out:
            # PyG writes processed/ beside raw/, so it reads a copy; the copy is dropped once converted
            work = out / "pyg"
            node = data.load_node_dataset(source, work, node_name, settings["normalize_features"])
            graph = data.load_graph_dataset(source, work, graph_name, settings["folds"], st.seed)
            node.save(out / "node.npz")
            graph.save(out / "graph.npz")
            shutil.rmtree(work)
        metrics = {"node": data.node_summary(node), "graph": data.graph_summary(graph),
                   "content_sha256": io.sha256_path(args.out)}  # fmt: skip
        log.info("graph_data: %s (%d nodes, %d edges), %s (%d graphs, %d folds)", node_name, node.num_nodes,
                 node.edge_index.shape[1], graph_name, graph.num_graphs, settings["folds"])  # fmt: skip
        st.finish(metrics, args.metrics)


if __name__ == "__main__":
    main()
