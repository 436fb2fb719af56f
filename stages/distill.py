"""Stage `distill`: train the student from the teacher, and the same student from labels only.

Per seed (base.seed + i, `distill.seeds` of them) a baseline student (labels only) and a distilled
student (the `distill` loss mix) are trained with the same architecture, data, epochs and
optimiser; `kd_gain` is the distilled student's test accuracy minus the baseline's, in points,
with its mean and spread over seeds. The first seed's two students are saved, and the one the
chain goes on with as `student.keras` (`chain.json` says which and why): the distilled student,
unless distilling lowered validation accuracy.

With `--state-dir`, each student's last finished epoch is kept there, and its result (and saved
model) when it finishes, until the stage ends: a run that was killed trains only the students it
had not finished, each from after its last finished epoch.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

from pipelines.common import budget, io
from pipelines.common.stage import Stage, resume_dir

log = logging.getLogger("edgesmith.distill")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.distill", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--teacher", required=True, help="trained teacher (.keras)")
    ap.add_argument("--teacher-metrics", required=True, help="metrics/teacher.json (the budget's reference)")
    ap.add_argument("--arch", help="optional JSON of student hyperparameters (e.g. a search result)")
    ap.add_argument("--out", required=True, help="folder for student_kd.keras, student_baseline.keras, and student.keras "
                    "with chain.json: the one the chain goes on with")
    ap.add_argument("--metrics", required=True, help="metrics/distill.json")
    ap.add_argument("--state-dir", help="keep finished epochs and students here until the stage ends: a killed run resumes")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "teacher": args.teacher, "teacher_metrics": args.teacher_metrics}
    with Stage("distill", args.params, sections=["student", "distill", "budget", "teacher"], inputs=inputs) as st:
        from pipelines.vision import distill, kd_gain, losses, student, teacher_targets, train
        from pipelines.vision.data import Dataset

        ds = Dataset.load(args.data)
        settings = st.params["distill"]
        arch = student.student_arch(st.params["student"], args.arch)
        teacher_metrics = io.read_json(args.teacher_metrics)
        teacher_accuracy = float(teacher_metrics["test_accuracy"])
        teachers = kd_gain.load_teachers(settings, args.teacher, st.resolve, ds, st.params["teacher"], st.seed)
        loss = losses.DistillLoss.from_params(settings)
        jobs = kd_gain.student_jobs(st.seed, settings["seeds"], loss)
        common = {"data": args.data, "arch": arch, "distill": settings, "teacher_params": st.params["teacher"],
                  "teacher": args.teacher, "targets": teachers.targets}  # fmt: skip
        state = None
        if args.state_dir:  # what decides every student: params, seed, the data and the teacher files
            files = kd_gain.teacher_files(settings, args.teacher, st.resolve)
            key = {"student": arch, "distill": settings, "teacher": st.params["teacher"], "seed": st.seed,
                   "data": io.sha256_file(args.data), "teachers": [io.sha256_file(t) for t in files]}  # fmt: skip
            code = [__file__, *(m.__file__ for m in (distill, kd_gain, losses, student, teacher_targets, train))]
            state = resume_dir(args.state_dir, key, code=code)
        with tempfile.TemporaryDirectory() as tmp, io.atomic_dir(args.out) as out:
            work = state or Path(tmp)
            for job in jobs:
                name = f"seed{job['seed']}_{job['kind']}"
                job["save"] = str(work / f"{name}.keras") if job["save"] else None
                job["result"] = str(work / f"{name}.json") if state else None
                job["checkpoint"] = str(work / f"{name}.epochs") if state else None
            results = kd_gain.train_students([{**common, **job} for job in jobs], settings["workers"])
            runs = kd_gain.seed_runs(jobs, results)
            chain = kd_gain.chain_student(float(teacher_metrics["val_accuracy"]), runs)
            for job in jobs:
                if job["save"]:
                    shutil.copy2(job["save"], out / f"student_{job['kind']}.keras")
                    if job["kind"] == chain["student"]:
                        shutil.copy2(job["save"], out / "student.keras")
            io.write_json(out / "chain.json", chain)
        (log.info if chain["student"] == "kd" and not chain["teacher_weaker_than_baseline"] else log.warning)(
            "distill: the chain goes on with the %s student: %s", "labels-only" if chain["student"] == "baseline"
            else "distilled", chain["reason"])  # fmt: skip
        metrics = {
            "teacher_accuracy": teacher_accuracy,
            "teachers": len(teachers.models),
            "snapshots": settings["snapshot_cycles"],
            "snapshot_seconds": round(teachers.snapshot_seconds, 1),
            "born_again": settings["born_again"],
            "architecture": "teacher" if settings["born_again"] else arch,
            "student_params": next(r["params"] for job, r in zip(jobs, results, strict=True) if job["kind"] == "kd"),
            "workers": settings["workers"],
            "training": {k: settings[k] for k in kd_gain.TRAINING_KEYS},
            "loss": dict(vars(loss)),
            "seeds": [r["seed"] for r in runs],
            "runs": runs,
            **kd_gain.kd_gain(runs),
            "test_accuracy": runs[0]["kd_accuracy"],
            "baseline_test_accuracy": runs[0]["baseline_accuracy"],
            "teacher_targets_seconds": round(teachers.targets_seconds, 1),
            "chain": chain,
            "budget": budget.check("student_kd", runs[0]["kd_accuracy"], teacher_accuracy,
                                   st.params["budget"]["max_accuracy_drop"]),  # fmt: skip
        }
        curves = {f"{job['kind']}/seed{job['seed']}/{k}": v for job, r in zip(jobs, results, strict=True)
                  for k, v in r.get("history", {}).items()}  # fmt: skip
        kinds = dict.fromkeys(job["kind"] for job in jobs if job["save"])
        st.finish(metrics, args.metrics, series=curves,
                  models=[{"name": f"student_{kind}", "kind": "keras", "path": Path(args.out) / f"student_{kind}.keras",
                           "example": ds.example()} for kind in kinds])  # fmt: skip
        if state:
            shutil.rmtree(state)


if __name__ == "__main__":
    main()
