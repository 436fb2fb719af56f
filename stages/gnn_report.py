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
        stage_metrics = {k: io.read_json(getattr(args, k)) for k in STAGE_METRICS}
        rows = graph_report.model_rows(stage_metrics["train"], stage_metrics["distill"], stage_metrics["export"], stage_metrics["benchmark"])
        final = graph_report.choose_final_node_model(rows, settings["max_accuracy_drop"], settings["rank_by"])
        stage_seconds = round(sum(v.get("duration_s", 0.0) for v in stage_metrics.values()), 1)
        per_node = stage_metrics["benchmark"]["per_node"]
        teacher = stage_metrics["distill"]["teacher"]["name"]
        doc = {
            "pipeline": "graph",
            "git_commit": tracking.git_commit(st.params_path.parent),
            "datasets": {"node": stage_metrics["graph_data"]["node"]["dataset"], "graph": stage_metrics["graph_data"]["graph"]["dataset"]},
            "final": final,
            "selection": {"max_accuracy_drop": settings["max_accuracy_drop"], "rank_by": settings["rank_by"],
                          "among": "the .tflite files (what ships to the edge)"},
            "pareto_front": report.pareto_front([r for r in rows if r["task"] == "node"]),
            "teacher": teacher,
            "distillation": {k: stage_metrics["distill"][k] for k in ("teacher", "mlp", "student_transductive", "student_unseen",
                                                          "student_gap_to_teacher_points", "student_gain_over_mlp_points",
                                                          "unseen_gap_to_teacher_points") if k in stage_metrics["distill"]},
            "per_node_inference": {
                "nodes": per_node["nodes"], "rounds": per_node["rounds"], "threads": per_node["threads"],
                "protocol": per_node["protocol"],
                "speedup_vs_int8_student": per_node["speedup_vs_int8_student"],
                "speedup_vs_int8_student_cold": per_node["speedup_vs_int8_student_cold"],
                "timings": {k: {"latency_p50_ms": v["latency_p50_ms"], "cold_latency_p50_ms": v["cold_latency_p50_ms"],
                                "includes": v["includes"]} for k, v in per_node["models"].items()},
                "neighbourhood_fetch": stage_metrics["benchmark"]["fetch"],
            },
            "search": {k: stage_metrics["search"][k] for k in ("oracle", "trials", "completed", "failed", "best_trial",
                                                   "best_val_accuracy", "best_config")},
            "host": stage_metrics["benchmark"]["host"],
            "stage_seconds": {k: v.get("duration_s") for k, v in stage_metrics.items()},
            "stage_seconds_total": stage_seconds,
            "targets": graph_report.check_targets(rows, stage_metrics["distill"], stage_metrics["benchmark"], stage_seconds),
            "models": rows,
        }  # fmt: skip
        plots = Path(args.plots)
        columns = (*graph_report.GRAPH_FIELDS[:-1],)  # the CSV leaves out the long `latency_includes` text
        io.write_text(plots / "report.csv", io.csv_text(rows, columns))
        with io.atomic_path(plots / "accuracy_latency.png") as tmp:
            graph_report.plot_accuracy_vs_latency(rows, final, tmp)
        for key, t in doc["targets"].items():
            log.info("gnn_report: target %s: %s %s -> %s", key, t["value"], t["target"], "holds" if t["holds"] else "MISSED")
        held = all(t["holds"] for t in doc["targets"].values())
        io.write_json(args.summary, report.dvc_metrics(rows, final, targets_hold=held))
        st.finish(doc, args.out, artifacts=[plots / "accuracy_latency.png"], extra_tags={"edgesmith.final": final})
        side_by_side = {f"{r['dataset']}.{r['name']}": {k: v for k, v in r.items() if isinstance(v, (int, float))}
                        for r in rows}  # fmt: skip
        st.summary(
            {**side_by_side, "stage_seconds_total": stage_seconds},
            artifacts=[args.out, plots / "report.csv", plots / "accuracy_latency.png"],
            tags={"edgesmith.final": final, "edgesmith.pipeline": "graph"},
            params={"final": final, "teacher": teacher},
            figures=report.model_figures(rows),
            register=report.registration(settings, final, held, "every target holds" if held else "a target missed"),
        )
        log.info("gnn_report: %s; final model %s", args.out, final)


if __name__ == "__main__":
    main()
