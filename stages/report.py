"""Stage `report`: join accuracy, measurements and cost analysis into metrics/report.json,
plots, and one MLflow summary run holding every model's figures side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import budget, io, plots, render, report, tracking
from pipelines.common.params import comma_list
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.report")
OPS_COLUMNS = ("index", "op", "dtype", "macs", "memory_access_bytes", "predicted_ms", "bound")
WATERFALL_COLUMNS = ("step", "name", "accuracy", "size_bytes", "latency_p50_ms")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quantize", required=True, help="metrics/quantize.json")
    ap.add_argument("--benchmark", required=True, help="metrics/benchmark.json")
    ap.add_argument("--calibration", required=True, help="metrics/calibrate.json")
    ap.add_argument("--distill", help="metrics/distill.json (kd_gain over seeds)")
    ap.add_argument("--prune", help="metrics/prune.json (sparsity, gzip size, dense vs pruned latency)")
    ap.add_argument("--arm-cost", help="metrics/arm_cost.json (emulated ARM instructions per inference)")
    ap.add_argument("--search", help="metrics/search.json (the trial the student came from and its front)")
    ap.add_argument("--device-bench", help="metrics/device_bench.json (latency measured on target.device over SSH)")
    ap.add_argument("--out", required=True, help="metrics/report.json")
    ap.add_argument("--summary", required=True, help="metrics/summary.json: the final model's figures, DVC's metrics")
    ap.add_argument("--plots", required=True, help="folder for the plots and their data")
    args = ap.parse_args(argv)
    inputs = {"quantize": args.quantize, "benchmark": args.benchmark, "calibration": args.calibration}
    inputs.update({k: v for k, v in (("distill", args.distill), ("prune", args.prune), ("arm_cost", args.arm_cost),
                                             ("device_bench", args.device_bench), ("search", args.search)) if v})
    with Stage("report", args.params, sections=["report", "budget", "target", "devices"], inputs=inputs) as st:
        settings = st.params["report"]
        measured, quantized = io.read_json(args.benchmark), io.read_json(args.quantize)
        doc = report.vision_report(quantized, measured, io.read_json(args.calibration), settings,
                                   st.params["budget"]["max_accuracy_drop"],
                                   comma_list(settings["final_dtypes"], "report.final_dtypes", report.DTYPES),
                                   tracking.git_commit(st.params_path.parent), st.params["target"],
                                   args.arm_cost and io.read_json(args.arm_cost),
                                   args.device_bench and io.read_json(args.device_bench))  # fmt: skip
        rows, final = doc["models"], doc["final"]
        chain = report.chain_summary(quantized, args.distill and io.read_json(args.distill),
                                     args.prune and io.read_json(args.prune))  # fmt: skip
        if chain:
            doc["compression_chain"] = chain
        if args.search:
            doc["search"] = report.search_section(io.read_json(args.search))
        folder = Path(args.plots)
        final_ops = measured["models"][final]["ops"]
        io.write_text(folder / "report.csv", io.csv_text(rows, report.FIELDS))
        io.write_text(folder / "final_ops.csv", io.csv_text(final_ops, OPS_COLUMNS))
        pngs = {
            "accuracy_latency.png": lambda t: plots.plot_accuracy_vs(rows, final, t, "latency_p50_ms"),
            "accuracy_memory_access.png": lambda t: plots.plot_accuracy_vs(rows, final, t, "memory_access_bytes"),
            "final_ops.png": lambda t: plots.plot_per_op(final_ops, final, t),
        }
        if chain:
            steps = chain["waterfall"] = report.waterfall_steps(rows, chain["quantized"])
            io.write_text(folder / "waterfall.csv", io.csv_text(steps, WATERFALL_COLUMNS))
            pngs["waterfall.png"] = lambda t: plots.plot_waterfall(steps, t)
        for name, draw in pngs.items():
            with io.atomic_path(folder / name) as tmp:
                draw(tmp)
        print(render.table(doc), flush=True)
        final_row = next(r for r in rows if r["name"] == final)
        within = all(c["ok"] for c in budget.check_budget(doc, st.params["budget"]))
        io.write_json(args.summary, report.dvc_metrics(rows, final, within_budget=within))
        st.finish(doc, args.out, artifacts=[folder / n for n in pngs], extra_tags={"edgesmith.final": final})
        side_by_side = {r["name"]: {k: v for k, v in r.items() if k not in ("name", "file", "dtype")} for r in rows}
        st.summary(
            {**side_by_side, **{"final_" + k: v for k, v in final_row.items() if k not in ("name", "file", "dtype")}},
            artifacts=[args.out, folder / "report.csv", *[folder / n for n in pngs]],
            tags={"edgesmith.final": final, "edgesmith.pipeline": "vision", "edgesmith.within_budget": str(within).lower()},
            params={"final": final},
            figures=report.model_figures(rows),
            register=report.registration(settings, final, within, "within the whole budget" if within else "over budget"),
        )
        log.info("report: %s; final model %s", args.out, final)


if __name__ == "__main__":
    main()
