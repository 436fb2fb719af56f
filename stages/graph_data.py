"""Stage `graph_data`: read the node-level and the graph-level dataset (a PyG dataset by name, or
the user's own files: `pipelines/graph/data.py`), check them, and save each as one .npz of plain
arrays. Either dataset may be null: that half of the graph pipeline is then skipped."""

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
        from pipelines.graph import data, store

        settings = st.params["graph_data"]
        source = base = st.resolve(settings["root"])  # the user's own files are paths under the root too
        metrics: dict = {}
        with io.atomic_dir(args.out) as out:
            # PyG writes processed/ beside raw/, so it reads a copy; the copy is dropped once converted
            work = out / "pyg"
            if settings["node_dataset"] is not None:
                node = data.load_node_dataset(settings["node_dataset"], base, source, work, settings, st.seed)
                node.save(out / store.NODE_FILE)
                metrics["node"] = data.node_summary(node)
                log.info("graph_data: node dataset %s: %d nodes, %d edges, %d features, %d classes", node.name,
                         node.num_nodes, node.edge_index.shape[1], node.num_features, node.num_classes)  # fmt: skip
            if settings["graph_dataset"] is not None:
                graph = data.load_graph_dataset(settings["graph_dataset"], base, source, work, settings, st.seed)
                graph.save(out / store.GRAPH_FILE)
                metrics["graph"] = data.graph_summary(graph)
                log.info("graph_data: graph dataset %s: %d graphs (up to %d nodes), %d classes, %d folds", graph.name,
                         graph.num_graphs, graph.max_nodes, graph.num_classes, settings["folds"])  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
        for half in ("node", "graph"):
            if half not in metrics:
                log.info("graph_data: graph_data.%s_dataset is null: the %s-level stages are skipped", half, half)
        st.finish({**metrics, "content_sha256": io.sha256_path(args.out)}, args.metrics)


if __name__ == "__main__":
    main()
