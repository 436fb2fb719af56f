"""Stage `report`: join accuracy, measurements and cost analysis into metrics/report.json,
plots, and one MLflow summary run holding every model's figures side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io, report, tracking
from pipelines.common.params import comma_list
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.report")
REFERENCE = "teacher_fp32"  # the accuracy budget is counted from the teacher's fp32 file
DTYPES = ("float32", "dynamic", "float16", "int8", "mixed")  # the quantize stage's file kinds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quantize", required=True, help="metrics/quantize.json")
    ap.add_argument("--benchmark", required=True, help="metrics/benchmark.json")
    ap.add_argument("--calibration", required=True, help="metrics/calibrate.json")
    ap.add_argument("--distill", help="metrics/distill.json (kd_gain over seeds)")
    ap.add_argument("--prune", help="metrics/prune.json (sparsity, gzip size, dense vs pruned latency)")
    ap.add_argument("--out", required=True, help="metrics/report.json")
    ap.add_argument("--plots", required=True, help="folder for the plots and their data")
    args = ap.parse_args(argv)
    inputs = {"quantize": args.quantize, "benchmark": args.benchmark, "calibration": args.calibration}
    inputs.update({k: v for k, v in (("distill", args.distill), ("prune", args.prune)) if v})
    with Stage("report", args.params, sections=["report", "budget"], inputs=inputs) as st:
        p = st.params["report"]
        max_drop = st.params["budget"]["max_accuracy_drop"]
        measured = io.read_json(args.benchmark)
        calibration = io.read_json(args.calibration)
        quantized = io.read_json(args.quantize)
        rows = report.model_rows(quantized["models"], measured["models"])
        dtypes = comma_list(p["final_dtypes"], "report.final_dtypes", DTYPES)
        final = report.choose_final(rows, max_drop, p["rank_by"], reference=REFERENCE, dtypes=dtypes,
                                    tie_tolerance=p["tie_tolerance"])  # fmt: skip
        doc = {
            "pipeline": "vision",
            "git_commit": tracking.git_commit(st.params_path.parent),
            "final": final,
            "selection": {"max_accuracy_drop": max_drop, "reference": REFERENCE, "rank_by": p["rank_by"],
                          "dtypes": dtypes or None, "tie_tolerance": p["tie_tolerance"]},
            "pareto_front": report.pareto_front(rows),
            "host": measured.get("host"),
            "cost_model": {
                "profiles": measured["profiles"],
                "calibration_fit": {
                    k: calibration["fit"][k] for k in ("median_abs_error", "within_tolerance", "tolerance")
                },
                "host_prediction": measured["host_prediction"],
            },
            "models": rows,
        }
        chain = chain_summary(quantized, args.distill, args.prune)
        if chain:
            doc["compression_chain"] = chain
        plots = Path(args.plots)
        final_ops = measured["models"][final]["ops"]
        io.write_text(plots / "report.csv", report.csv_text(rows))
        io.write_text(
            plots / "final_ops.csv",
            report.csv_text(
                final_ops, ("index", "op", "dtype", "macs", "memory_access_bytes", "predicted_ms", "bound")
            ),
        )
        pngs = {
            "accuracy_latency.png": lambda t: report.plot_accuracy_vs(rows, final, t, "latency_p50_ms"),
            "accuracy_memory_access.png": lambda t: report.plot_accuracy_vs(rows, final, t, "memory_access_bytes"),
            "final_ops.png": lambda t: report.plot_per_op(final_ops, final, t),
        }
        if chain:
            steps = report.waterfall_steps(rows, chain["quantized"])
            chain["waterfall"] = steps
            io.write_text(
                plots / "waterfall.csv",
                report.csv_text(steps, ("step", "name", "accuracy", "size_bytes", "latency_p50_ms")),
            )
            pngs["waterfall.png"] = lambda t: report.plot_waterfall(steps, t)
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
            extra_tags={"edgesmith.summary": "true", "edgesmith.final": final, "edgesmith.pipeline": "vision"},
            extra_params={"final": final},
        )
        log.info("report: %s; final model %s", args.out, final)


def chain_summary(quantized: dict, distill_path: str | None, prune_path: str | None) -> dict:
    """What each step of the compression chain gained and cost, from the stages' own metrics."""
    chain = {}
    if distill_path:
        d = io.read_json(distill_path)
        chain["distill"] = {
            k: d[k]
            for k in ("seeds", "kd_gain_points", "baseline_accuracy", "kd_accuracy", "student_params", "loss", "budget")
        }
    if prune_path:
        p = io.read_json(prune_path)
        chain["prune"] = {
            k: p[k]
            for k in (
                "sparsity",
                "target_sparsity",
                "schedule",
                "m_by_n",
                "int8",
                "gzip_ratio",
                "latency_speedup",
                "budget",
            )
        }
    if "chain" in quantized:
        q = quantized["chain"]
        chain["quantize"] = q
        chain["quantized"] = q["final"] or q["attempts"][-1]["model"]
    return chain


if __name__ == "__main__":
    main()
