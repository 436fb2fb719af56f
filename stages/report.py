"""Stage `report`: join accuracy, measurements and cost analysis into metrics/report.json,
plots, and one MLflow summary run holding every model's figures side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io, report, tracking
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.report")
REFERENCE = "teacher_fp32"  # the accuracy budget is counted from the teacher's fp32 file


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quantize", required=True, help="metrics/quantize.json")
    ap.add_argument("--benchmark", required=True, help="metrics/benchmark.json")
    ap.add_argument("--calibration", required=True, help="metrics/calibrate.json")
    ap.add_argument("--out", required=True, help="metrics/report.json")
    ap.add_argument("--plots", required=True, help="folder for the plots and their data")
    args = ap.parse_args(argv)
    inputs = {"quantize": args.quantize, "benchmark": args.benchmark, "calibration": args.calibration}
    with Stage("report", args.params, sections=["report", "budget"], inputs=inputs) as st:
        p = st.params["report"]
        max_drop = st.params["budget"]["max_accuracy_drop"]
        measured = io.read_json(args.benchmark)
        calibration = io.read_json(args.calibration)
        rows = report.model_rows(io.read_json(args.quantize)["models"], measured["models"])
        final = report.choose_final(rows, max_drop, p["rank_by"], reference=REFERENCE)
        doc = {
            "pipeline": "vision",
            "git_commit": tracking.git_commit(st.params_path.parent),
            "final": final,
            "selection": {"max_accuracy_drop": max_drop, "reference": REFERENCE, "rank_by": p["rank_by"]},
            "pareto_front": report.pareto_front(rows),
            "host": measured.get("host"),
            "cost_model": {
                "profiles": measured["profiles"],
                "calibration_fit": {k: calibration["fit"][k] for k in ("median_abs_error", "within_tolerance", "tolerance")},
                "host_prediction": measured["host_prediction"],
            },
            "models": rows,
        }
        plots = Path(args.plots)
        final_ops = measured["models"][final]["ops"]
        io.write_text(plots / "report.csv", report.csv_text(rows))
        io.write_text(plots / "final_ops.csv", report.csv_text(final_ops, ("index", "op", "dtype", "macs", "memory_access_bytes", "predicted_ms", "bound")))
        pngs = {
            "accuracy_latency.png": lambda t: report.plot_accuracy_vs(rows, final, t, "latency_p50_ms"),
            "accuracy_memory_access.png": lambda t: report.plot_accuracy_vs(rows, final, t, "memory_access_bytes"),
            "final_ops.png": lambda t: report.plot_per_op(final_ops, final, t),
        }
        for name, draw in pngs.items():
            with io.atomic_path(plots / name) as tmp:
                draw(tmp)
        print(report.table(doc), flush=True)
        final_row = next(r for r in rows if r["name"] == final)
        st.finish(doc, args.out, artifacts=[plots / n for n in pngs], extra_tags={"edgesmith.final": final})
        side_by_side = {r["name"]: {k: v for k, v in r.items() if k not in ("name", "file", "dtype")} for r in rows}
        st.log_run(
            "summary",
            {**side_by_side, **{"final_" + k: v for k, v in final_row.items() if k not in ("name", "file", "dtype")}},
            artifacts=[args.out, plots / "report.csv", *[plots / n for n in pngs]],
            extra_tags={"edgesmith.summary": "true", "edgesmith.final": final},
            extra_params={"final": final},
        )
        log.info("report: %s; final model %s", args.out, final)


if __name__ == "__main__":
    main()
