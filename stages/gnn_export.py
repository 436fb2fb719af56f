"""Stage `gnn_export`: rebuild the GLNN student and the deployed graph classifiers in tf-keras from
their PyTorch weights, convert each to fp32 and full-integer int8 TFLite, and check every file
against the PyTorch outputs (test nodes, test graphs) in the TFLite runtime. TensorFlow only: no
torch in this process."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_export")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_export", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz, graph.npz)")
    ap.add_argument("--student", required=True, help="gnn_distill's folder (student.npz, reference.npz)")
    ap.add_argument("--models", required=True, help="gnn_train's folder (graph classifiers' weights, graph_reference.npz)")
    ap.add_argument("--out", required=True, help="folder for student_{fp32,int8}.tflite and <graph model>_{fp32,int8}.tflite")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_export.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "student": args.student, "models": args.models}
    with Stage("gnn_export", args.params, sections=["graph", "gnn_export"], inputs=inputs) as st:
        from pipelines.common.seeding import seed_everything
        from pipelines.edge.predict import write_labels
        from pipelines.graph import export, store

        settings = st.params["gnn_export"]
        seed_everything(st.seed)
        node, graph = store.load_halves(args.data)
        metrics: dict = {"models": {}}
        logged = []
        with io.atomic_dir(args.out) as out:
            if node is not None:
                files, figures = export.export_student(node, Path(args.student), settings, st.seed, out, args.out)
                metrics["models"].update(files)
                example = figures.pop("example")
                metrics.update(figures)
                logged += [{"name": name, "kind": "tflite", "path": f["file"], "example": example,
                            "params": {"dtype": f["dtype"]}, "metrics": {"accuracy": f["accuracy"], "size_bytes": f["size_bytes"]}}
                           for name, f in files.items()]  # fmt: skip
                write_labels(out, [str(c) for c in range(node.num_classes)])  # the classes, numbered as the data gives them
            else:
                metrics["node"] = store.skipped("node")
            if graph is not None:
                files, figures, example = export.export_graph_classifiers(graph, Path(args.models), settings, out, args.out)
                metrics["models"].update(files)
                metrics["graph"] = figures
                logged += [{"name": name, "kind": "tflite", "path": f["file"], "example": example,
                            "params": {"dtype": f["dtype"], "max_nodes": graph.max_nodes},
                            "metrics": {"accuracy": f["accuracy"], "size_bytes": f["size_bytes"]}}
                           for name, f in files.items()]  # fmt: skip
            else:
                metrics["graph"] = store.skipped("graph")
        st.finish(metrics, args.metrics, models=logged)


if __name__ == "__main__":
    main()
