"""Stage `gnn_report`: join the graph stages' metrics into metrics/graph_report.json (the vision
report's model fields plus `dataset`), check the pipeline's targets, plot accuracy vs per-node
latency, and log one MLflow summary run with every model's figures side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io, report, tracking
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_report")
STAGE_METRICS = ("graph_data", "search", "train", "distill", "export", "benchmark")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_report", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--graph-data", required=True, help="metrics/graph_data.json")
    ap.add_argument("--search", required=True, help="metrics/gnn_search.json")
    ap.add_argument("--train", required=True, help="metrics/gnn_train.json")
    ap.add_argument("--distill", required=True, help="metrics/gnn_distill.json")
    ap.add_argument("--export", required=True, help="metrics/gnn_export.json")
    ap.add_argument("--benchmark", required=True, help="metrics/gnn_benchmark.json")
    ap.add_argument("--out", required=True, help="metrics/graph_report.json")
    ap.add_argument("--summary", required=True, help="metrics/graph_summary.json: the final model's figures, DVC's metrics")
    ap.add_argument("--plots", required=True, help="folder for the plot and its data")
    args = ap.parse_args(argv)
    inputs = {k: getattr(args, k) for k in STAGE_METRICS}
    with Stage("gnn_report", args.params, sections=["graph", "gnn_report"], inputs=inputs) as st:
        from pipelines.graph import report as graph_report

        settings = st.params["gnn_report"]
        m = {k: io.read_json(getattr(args, k)) for k in STAGE_METRICS}
        data = {k: m["graph_data"][k] for k in ("node", "graph") if k in m["graph_data"]}
        rows = graph_report.model_rows(data, m["train"], m["distill"], m["export"], m["benchmark"])
        finals = graph_report.choose_finals(rows, settings["max_accuracy_drop"], settings["rank_by"])
        final = finals.get("node") or finals["graph"]  # the registered model: the node model when there is one
        stage_seconds = round(sum(v.get("duration_s", 0.0) for v in m.values()), 1)
        targets = graph_report.check_targets(rows, m["distill"], m["benchmark"], stage_seconds, settings)
        doc = {
            "pipeline": "graph",
            "git_commit": tracking.git_commit(st.params_path.parent),
            "datasets": {k: v["dataset"] for k, v in data.items()},
            "final": final,
            "finals": finals,
            "selection": {"max_accuracy_drop": settings["max_accuracy_drop"], "rank_by": settings["rank_by"],
                          "among": "each task's .tflite files (what ships to the edge)"},
            "pareto_front": {task: report.pareto_front([r for r in rows if r["task"] == task]) for task in data},
            "host": m["benchmark"]["host"],
            "stage_seconds": {k: v.get("duration_s") for k, v in m.items()},
            "stage_seconds_total": stage_seconds,
            "targets": targets,
            "models": rows,
        }  # fmt: skip
        if "node" in data:
            doc.update(graph_report.node_sections(m["distill"], m["benchmark"], m["search"]))
        if "graph" in data:
            doc["graph_classifiers"] = {name: {"cv_accuracy": t["accuracy"], "cv_accuracy_std": t["accuracy_std"],
                                               **t["deployed"], **m["export"]["graph"].get(name, {})}
                                        for name, t in m["train"]["graph"].items()}  # fmt: skip
        plots = Path(args.plots)
        columns = (*graph_report.GRAPH_FIELDS[:-1],)  # the CSV leaves out the long `latency_includes` text
        io.write_text(plots / "report.csv", io.csv_text(rows, columns))
        with io.atomic_path(plots / "accuracy_latency.png") as tmp:
            graph_report.plot_accuracy_vs_latency(rows, finals, tmp)
        for key, t in targets.items():
            log.info("gnn_report: target %s: %s %s -> %s", key, t["value"], t["target"], "holds" if t["holds"] else "MISSED")
        held = all(t["holds"] for t in targets.values())
        io.write_json(args.summary, report.dvc_metrics(rows, final, targets_hold=held))
        st.finish(doc, args.out, artifacts=[plots / "accuracy_latency.png"], extra_tags={"edgesmith.final": final})
        side_by_side = {f"{r['dataset']}.{r['name']}": {k: v for k, v in r.items() if isinstance(v, (int, float))}
                        for r in rows}  # fmt: skip
        st.summary(
            {**side_by_side, "stage_seconds_total": stage_seconds},
            artifacts=[args.out, plots / "report.csv", plots / "accuracy_latency.png"],
            tags={"edgesmith.final": final, "edgesmith.pipeline": "graph"},
            params={"final": final, **{f"final_{k}": v for k, v in finals.items()}},
            figures=report.model_figures(rows),
            register=report.registration(settings, final, held, "every target holds" if held else "a target missed"),
        )
        log.info("gnn_report: %s; final models %s", args.out, finals)


if __name__ == "__main__":
    main()
