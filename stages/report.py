"""Stage `report`: join accuracy and measurements into metrics/report.json, plots, and one
MLflow summary run holding every model's figures side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io, report, tracking
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.report")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quantize", required=True, help="metrics/quantize.json")
    ap.add_argument("--benchmark", required=True, help="metrics/benchmark.json")
    ap.add_argument("--out", required=True, help="metrics/report.json")
    ap.add_argument("--csv", required=True, help="plot data for dvc plots (.csv)")
    ap.add_argument("--png", required=True, help="accuracy vs latency plot (.png)")
    args = ap.parse_args(argv)
    inputs = {"quantize": args.quantize, "benchmark": args.benchmark}
    with Stage("report", args.params, sections=["report"], inputs=inputs) as st:
        p = st.params["report"]
        quantized = io.read_json(args.quantize)["models"]
        measured = io.read_json(args.benchmark)
        rows = report.model_rows(quantized, measured["models"])
        final = report.choose_final(rows, p["max_accuracy_drop"], p["rank_by"])
        doc = {
            "pipeline": "vision",
            "git_commit": tracking.git_commit(st.params_path.parent),
            "final": final,
            "selection": {"max_accuracy_drop": p["max_accuracy_drop"], "rank_by": p["rank_by"]},
            "pareto_front": report.pareto_front(rows),
            "host": measured.get("host"),
            "models": rows,
        }
        io.write_text(args.csv, report.csv_text(rows))
        with io.atomic_path(args.png) as tmp:
            report.plot_accuracy_latency(rows, final, tmp)
        print(report.table(doc), flush=True)
        final_row = next(r for r in rows if r["name"] == final)
        stage_metrics = {"final_" + k: v for k, v in final_row.items() if k not in ("name", "file", "dtype")}
        st.finish(doc, args.out, artifacts=[args.csv, args.png], extra_tags={"edgesmith.final": final})
        side_by_side = {r["name"]: {k: v for k, v in r.items() if k not in ("name", "file", "dtype")} for r in rows}
        st.log_run(
            "summary", {**side_by_side, **stage_metrics}, artifacts=[args.out, args.csv, args.png],
            extra_tags={"edgesmith.summary": "true", "edgesmith.final": final}, extra_params={"final": final},
        )  # fmt: skip
        log.info("report: %s; final model %s", Path(args.out), final)


if __name__ == "__main__":
    main()
