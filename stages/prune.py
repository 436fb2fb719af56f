"""Stage `prune`: magnitude-prune the distilled student with tfmot, fine-tuning it (with the
distillation loss by default), strip the wrappers, and measure what pruning bought: the sparsity
of every kernel of the saved model, the int8 file's raw and gzip-compressed size, and dense vs
pruned int8 latency measured in the TFLite runtime in one run."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from pipelines.common import budget, io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.prune")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.prune", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--student", required=True, help="the distilled student (.keras)")
    ap.add_argument("--teacher", required=True, help="the teacher (.keras), for fine-tuning with the distillation loss")
    ap.add_argument("--teacher-metrics", required=True, help="metrics/teacher.json (the budget's reference)")
    ap.add_argument("--out", required=True, help="the pruned, stripped student (.keras)")
    ap.add_argument("--metrics", required=True, help="metrics/prune.json")
    args = ap.parse_args(argv)
    inputs = {
        "data": args.data,
        "student": args.student,
        "teacher": args.teacher,
        "teacher_metrics": args.teacher_metrics,
    }
    with Stage("prune", args.params, sections=["prune", "distill", "budget", "benchmark"], inputs=inputs) as st:
        from pipelines.edge import bench, evaluate
        from pipelines.vision import convert, distill, models, prune
        from pipelines.vision.data import Dataset
        from pipelines.vision.tfk import seed_everything

        p, dp, bp = st.params["prune"], st.params["distill"], st.params["benchmark"]
        ds = Dataset.load(args.data)
        teacher_accuracy = float(io.read_json(args.teacher_metrics)["test_accuracy"])
        dense = models.load_model(args.student)
        seed_everything(st.seed)
        loss = distill.DistillLoss.from_params(dp).logits_only() if p["distill"] else distill.DistillLoss()
        targets = None
        if loss.uses_teacher:
            targets = distill.teacher_targets([models.load_model(args.teacher)], ds.x_train, dp["temperature"],
                                              dp["augment_flip"], standardise=dp["logit_standardize"])  # fmt: skip
        steps = int(np.ceil(len(ds.x_train) / p["batch_size"]))
        sched, frequency = prune.schedule(
            p["schedule"], p["target_sparsity"], steps * p["epochs"], p["updates_per_epoch"], steps
        )
        m_by_n = (2, 4) if p["m_by_n"] == "2:4" else None
        wrapped = prune.prunable(dense, sched, m_by_n)
        t0 = time.time()
        train_p = {**p, "augment_flip": dp["augment_flip"]}
        distill.fit_student(wrapped, ds.x_train, ds.y_train, ds.x_val, ds.y_val, loss, train_p, st.seed,
                            targets=targets, callbacks=[prune.step_callback()])  # fmt: skip
        fine_tune_s = time.time() - t0
        with io.atomic_path(args.out) as tmp:
            prune.strip(wrapped).save(tmp)
        pruned = models.load_model(args.out)  # measure what was saved, not what is in memory
        per_kernel = prune.kernel_sparsity(pruned)
        acc = distill.accuracy(pruned, ds.x_test, ds.y_test)
        dense_acc = distill.accuracy(dense, ds.x_test, ds.y_test)

        calib = ds.x_train[np.random.default_rng(st.seed).permutation(len(ds.x_train))[:200]]
        with tempfile.TemporaryDirectory() as tmpdir:
            files, sizes = {}, {}
            for name, model in (("dense", dense), ("pruned", pruned)):
                blob = convert.to_tflite_int8(model, calib)
                files[name] = Path(tmpdir) / f"{name}_int8.tflite"
                files[name].write_bytes(blob)
                sizes[name] = {"size_bytes": len(blob), "gzip_bytes": prune.gzip_size(blob),
                               "accuracy": evaluate.accuracy(files[name], ds.x_test, ds.y_test)}  # fmt: skip
            timing = bench.interleaved(
                files, rounds=3, threads=bp["threads"], warmup_runs=bp["warmup_runs"], min_runs=bp["min_runs"],
                min_seconds=bp["min_seconds"], pin_cpu=bp["pin_cpu"], seed=st.seed,
            )  # fmt: skip
        for name in files:
            sizes[name].update({k: timing[name][k] for k in ("latency_p50_ms", "round_p50_ms")})
        speedup = timing["dense"]["latency_p50_ms"] / timing["pruned"]["latency_p50_ms"]
        metrics = {
            "schedule": p["schedule"],
            "m_by_n": p["m_by_n"],
            "target_sparsity": p["target_sparsity"],
            "frequency_steps": frequency,
            "steps": steps * p["epochs"],
            "fine_tune_loss": "distillation" if loss.uses_teacher else "labels",
            "fine_tune_seconds": round(fine_tune_s, 1),
            "sparsity": prune.overall_sparsity(per_kernel),
            "kernels": per_kernel,
            "test_accuracy": acc,
            "dense_test_accuracy": dense_acc,
            "int8": sizes,
            "gzip_ratio": round(sizes["pruned"]["gzip_bytes"] / sizes["dense"]["gzip_bytes"], 4),
            "latency_speedup": round(speedup, 4),
            "budget": budget.check("student_pruned", acc, teacher_accuracy, st.params["budget"]["max_accuracy_drop"]),
        }
        log.info("prune: sparsity %.3f (target %.2f), accuracy %.4f (dense %.4f), int8 gzip %d -> %d bytes, "
                 "p50 %.4f -> %.4f ms (x%.2f)", metrics["sparsity"], p["target_sparsity"], acc, dense_acc,
                 sizes["dense"]["gzip_bytes"], sizes["pruned"]["gzip_bytes"], timing["dense"]["latency_p50_ms"],
                 timing["pruned"]["latency_p50_ms"], speedup)  # fmt: skip
        st.finish(metrics, args.metrics)


if __name__ == "__main__":
    main()
