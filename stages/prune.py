"""Stage `prune`: magnitude-prune the chain's student (the distilled one, as a rule) with tfmot, fine-tuning it (with the
distillation loss by default), strip the wrappers, and measure what pruning bought: the sparsity
of every kernel of the saved model, the int8 file's raw and gzip-compressed size, and dense vs
pruned int8 latency measured in the TFLite runtime in one run."""

from __future__ import annotations

import argparse
import logging

from pipelines.common import budget, io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.prune")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.prune", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--student", required=True, help="the chain's student (.keras; distill's student.keras)")
    ap.add_argument("--chain", help="distill's chain.json: a labels-only student is fine-tuned on labels, not distilled")
    ap.add_argument("--teacher", required=True, help="the teacher (.keras), for fine-tuning with the distillation loss")
    ap.add_argument("--teacher-metrics", required=True, help="metrics/teacher.json (the budget's reference)")
    ap.add_argument("--out", required=True, help="the pruned, stripped student (.keras)")
    ap.add_argument("--metrics", required=True, help="metrics/prune.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "student": args.student, "teacher": args.teacher, "teacher_metrics": args.teacher_metrics}
    with Stage("prune", args.params, sections=["prune", "distill", "budget", "benchmark"], inputs=inputs) as st:
        from pipelines.vision import prune
        from pipelines.vision.data import Dataset
        from pipelines.vision.evaluate import accuracy
        from pipelines.vision.tfk import load_model

        settings = st.params["prune"]
        chain = io.read_json(args.chain) if args.chain else {"student": "kd"}
        if chain["student"] == "baseline" and settings["distill"]:
            log.info("prune: fine-tuning on labels only: %s", chain.get("reason", "the chain's student is labels-only"))
            settings = {**settings, "distill": False}
        ds = Dataset.load(args.data)
        teacher_accuracy = float(io.read_json(args.teacher_metrics)["test_accuracy"])
        dense = load_model(args.student)
        run = prune.prune_student(dense, ds, settings, st.params["distill"], args.teacher, st.seed)
        with io.atomic_path(args.out) as tmp:
            run.model.save(tmp)
        pruned = load_model(args.out)  # measure what was saved, not what is in memory
        per_kernel = prune.kernel_sparsity(pruned)
        acc = accuracy(pruned, ds.x_test, ds.y_test)
        dense_acc = accuracy(dense, ds.x_test, ds.y_test)
        int8 = prune.int8_dense_vs_pruned(dense, pruned, ds, st.params["benchmark"], st.seed)
        speedup = int8["dense"]["latency_p50_ms"] / int8["pruned"]["latency_p50_ms"]
        metrics = {
            "student": chain["student"],
            "distilled_fine_tuning": settings["distill"],
            "schedule": settings["schedule"],
            "m_by_n": settings["m_by_n"],
            "target_sparsity": settings["target_sparsity"],
            "frequency_steps": run.frequency_steps,
            "steps": run.steps,
            "fine_tune_loss": run.fine_tune_loss,
            "fine_tune_seconds": round(run.fine_tune_seconds, 1),
            "sparsity": prune.overall_sparsity(per_kernel),
            "kernels": per_kernel,
            "test_accuracy": acc,
            "dense_test_accuracy": dense_acc,
            "int8": int8,
            "gzip_ratio": round(int8["pruned"]["gzip_bytes"] / int8["dense"]["gzip_bytes"], 4),
            "latency_speedup": round(speedup, 4),
            "budget": budget.check("student_pruned", acc, teacher_accuracy, st.params["budget"]["max_accuracy_drop"]),
        }
        log.info("prune: sparsity %.3f (target %.2f), accuracy %.4f (dense %.4f), int8 gzip %d -> %d bytes, "
                 "p50 %.4f -> %.4f ms (x%.2f)", metrics["sparsity"], settings["target_sparsity"], acc, dense_acc,
                 int8["dense"]["gzip_bytes"], int8["pruned"]["gzip_bytes"], int8["dense"]["latency_p50_ms"],
                 int8["pruned"]["latency_p50_ms"], speedup)  # fmt: skip
        st.finish(metrics, args.metrics, series={f"fine_tune/{k}": v for k, v in run.history.items()},
                  models=[{"name": "student_pruned", "kind": "keras", "path": args.out, "example": ds.example(),
                           "metrics": {"test_accuracy": acc, "sparsity": metrics["sparsity"]}}])  # fmt: skip


if __name__ == "__main__":
    main()
