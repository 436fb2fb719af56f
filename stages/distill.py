"""Stage `distill`: train the student from the teacher, and the same student from labels only.

Per seed (base.seed + i, `distill.seeds` of them) a baseline student (labels only) and a distilled
student (the `distill` loss mix) are trained with the same architecture, data, epochs and
optimiser; `kd_gain` is the distilled student's test accuracy minus the baseline's, in points,
with its mean and spread over seeds. The first seed's two students are saved.

With `--state-dir`, each student's last finished epoch is kept there, and its result (and saved
model) when it finishes, until the stage ends: a run that was killed trains only the students it
had not finished, each from after its last finished epoch.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipelines.common import budget, io
from pipelines.common.errors import UserError
from pipelines.common.params import SCHEMA, comma_list
from pipelines.common.stage import Stage, resume_dir

log = logging.getLogger("edgesmith.distill")
# What a baseline student's accuracy depends on besides its architecture (recorded in the metrics).
TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "augment_flip", "born_again")


def student_arch(params: dict, arch_path: str | None) -> dict:
    """The `student` params, overridden by the keys of a search result JSON when one is given."""
    arch = dict(params)
    if arch_path:
        try:
            found = io.read_json(arch_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{arch_path}: not a readable JSON file ({exc})") from None
        found = found.get("student", found) if isinstance(found, dict) else found
        if not isinstance(found, dict):
            raise UserError(f"{arch_path}: expected a JSON object of student hyperparameters")
        for key, value in found.items():
            spec = SCHEMA["student"].get(key)
            if spec is None:
                raise UserError(f"{arch_path}: unknown student key {key!r}; allowed: {', '.join(SCHEMA['student'])}")
            if not spec.check(value):
                raise UserError(f"{arch_path}: student.{key} must be {spec.describe()}, got {json.dumps(value)}")
        arch.update(found)
    return arch


def train_student(job: dict) -> dict:
    """One student of one seed: build, train on `job['loss']`, test; saved to `job['save']` when
    set. Runs in a worker process (`distill.workers` > 1) or in the stage's own."""
    from pipelines.vision import distill, models, train
    from pipelines.vision.data import Dataset
    from pipelines.vision.tfk import seed_everything

    p, loss = job["distill"], distill.DistillLoss(**job["loss"])
    ds = Dataset.load(job["data"])
    seed_everything(job["seed"])
    if p["born_again"]:
        model = train.build_teacher(ds.x_train.shape[1:], len(ds.class_names), job["teacher_params"])
    else:
        model = distill.build_student(ds.x_train.shape[1:], len(ds.class_names), job["arch"])
    teacher = models.load_model(job["teacher"]) if loss.hint_weight > 0 else None  # the other terms use `targets`
    log.info("distill: seed %d, %s student (%d parameters)", job["seed"], job["kind"], model.count_params())
    history = distill.fit_student(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, loss, p, job["seed"],
                                  targets=job["targets"], teacher=teacher, checkpoint=job.get("checkpoint"))  # fmt: skip
    result = {
        "kind": job["kind"],
        "accuracy": distill.accuracy(model, ds.x_test, ds.y_test),
        "val_accuracy": history["val_accuracy"][-1],
        "seconds": round(sum(history["seconds"]), 1),  # training, with the epochs before a resume
        "params": int(model.count_params()),
    }
    if job["save"]:
        model.save(job["save"])
    if job.get("result"):  # after the model: a result file means the student's work is all on disk
        io.write_json(job["result"], result)
    log.info("distill: seed %d, %s student: test accuracy %.4f (%.0f s)", job["seed"], job["kind"],
             result["accuracy"], result["seconds"])  # fmt: skip
    return result


def teachers_and_targets(p: dict, teacher_path: str, resolve, ds, teacher_params: dict, seed: int):
    """The teacher, the `ensemble_teachers` files (paths through `resolve`) and a snapshot ensemble
    when `snapshot_cycles` > 0; their averaged outputs on the training images (`TeacherTargets`),
    with the first teacher's attention maps and embedding when the loss has attention transfer or
    relational KD. Returns (teachers, targets, snapshot seconds, target seconds)."""
    from pipelines.vision import distill, models, train

    teachers = [models.load_model(teacher_path)]
    teachers += [models.load_model(resolve(t)) for t in comma_list(p["ensemble_teachers"], "distill.ensemble_teachers")]
    t0 = time.time()
    if p["snapshot_cycles"]:
        log.info("distill: snapshot ensemble, %d cycles of %d epoch(s) from the teacher", p["snapshot_cycles"],
                 p["snapshot_epochs"])  # fmt: skip
        teachers += train.snapshot_ensemble(
            teachers[0], ds.x_train, ds.y_train, ds.x_val, ds.y_val, teacher_params, seed,
            p["snapshot_cycles"], p["snapshot_epochs"], p["snapshot_learning_rate"],
        )  # fmt: skip
    snapshot_s = time.time() - t0
    t0 = time.time()
    features = distill.DistillLoss.from_params(p).uses_teacher_maps
    targets = distill.teacher_targets(teachers, ds.x_train, p["temperature"], p["augment_flip"],
                                      standardise=p["logit_standardize"], features=features)  # fmt: skip
    return teachers, targets, snapshot_s, time.time() - t0


def by_seed(jobs: list[dict], results: list[dict]) -> dict[int, dict]:
    """Per seed, each job kind's accuracy, val_accuracy and seconds as `<kind>_<figure>`."""
    runs = {seed: {"seed": seed} for seed in sorted({job["seed"] for job in jobs})}
    for job, r in zip(jobs, results, strict=True):
        runs[job["seed"]].update({f"{job['kind']}_{k}": r[k] for k in ("accuracy", "val_accuracy", "seconds")})
    return runs


def gain_points(run: dict) -> float:
    """kd_gain of one seed: the distilled student's test accuracy over the baseline's, in points."""
    return round((run["kd_accuracy"] - run["baseline_accuracy"]) * 100, 3)


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), so that workers of a stage
    killed by `kill -9` do not train on, orphaned, beside the next run. The signal comes when the
    thread that started the process ends: `worker_pool`'s executor starts its workers in the
    thread that submits the jobs, the stage's main thread."""
    if sys.platform.startswith("linux") and ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL):  # 1: PDEATHSIG
        log.warning("distill: this worker will not die with the stage (prctl: errno %d)", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def _worker_init(threads: int, parent: int) -> None:
    _die_with(parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from pipelines.vision.tfk import tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """`workers` fresh processes (TensorFlow's runtime does not survive a fork), each with
    `threads` TensorFlow threads, that die with this process."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(threads, os.getpid()))


def run_jobs(jobs: list[dict], workers: int) -> list[dict]:
    """`train_student` for every job, in order: here, or in `workers` fresh processes side by side,
    each with an equal share of the cores for TensorFlow's threads (on 2 cores, the default run's six
    students took 22.4 min as two one-thread workers, 33.4 min one after another with two threads).
    A job whose `result` file exists (it finished in a run that was then killed) is not trained again."""
    kept = {i: io.read_json(job["result"]) for i, job in enumerate(jobs) if job.get("result")
            and Path(job["result"]).is_file()}  # fmt: skip
    if kept:
        log.info("distill: %d of %d students finished before, kept: %s", len(kept), len(jobs),
                 ", ".join(f"seed {jobs[i]['seed']} {jobs[i]['kind']}" for i in kept))  # fmt: skip
    todo = [job for i, job in enumerate(jobs) if i not in kept]
    if workers <= 1 or not todo:  # one student left still trains in a worker: the same threads as the rest
        trained = iter([train_student(job) for job in todo])
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        log.info("distill: %d students in %d worker processes, %d TensorFlow thread(s) each", len(todo), workers,
                 threads)  # fmt: skip
        with worker_pool(workers, threads) as pool:
            trained = iter(list(pool.map(train_student, todo)))
    return [kept[i] if i in kept else next(trained) for i in range(len(jobs))]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.distill", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--teacher", required=True, help="trained teacher (.keras)")
    ap.add_argument("--teacher-metrics", required=True, help="metrics/teacher.json (the budget's reference)")
    ap.add_argument("--arch", help="optional JSON of student hyperparameters (e.g. a search result)")
    ap.add_argument("--out", required=True, help="folder for student_kd.keras and student_baseline.keras")
    ap.add_argument("--metrics", required=True, help="metrics/distill.json")
    ap.add_argument("--state-dir", help="keep finished epochs and students here until the stage ends: a killed run resumes")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "teacher": args.teacher, "teacher_metrics": args.teacher_metrics}
    sections = ["student", "distill", "budget", "teacher"]
    with Stage("distill", args.params, sections=sections, inputs=inputs) as st:
        from pipelines.vision import distill, train
        from pipelines.vision.data import Dataset

        p = st.params["distill"]
        arch = student_arch(st.params["student"], args.arch)
        ds = Dataset.load(args.data)
        teacher_accuracy = float(io.read_json(args.teacher_metrics)["test_accuracy"])
        teachers, targets, snapshot_s, target_s = teachers_and_targets(
            p, args.teacher, st.resolve, ds, st.params["teacher"], st.seed
        )
        loss = distill.DistillLoss.from_params(p)
        jobs = []
        for i in range(p["seeds"]):
            for kind, kind_loss in (("baseline", loss.labels_only()), ("kd", loss)):
                jobs.append({"seed": st.seed + i, "kind": kind, "loss": vars(kind_loss), "save": i == 0})
        common = {"data": args.data, "arch": arch, "distill": p, "teacher_params": st.params["teacher"],
                  "teacher": args.teacher, "targets": targets}  # fmt: skip
        state = None
        if args.state_dir:  # what decides every student: params, seed, the data and the teacher files
            extra = comma_list(p["ensemble_teachers"], "distill.ensemble_teachers")
            teacher_files = [args.teacher, *(st.resolve(t) for t in extra)]
            state = resume_dir(args.state_dir, {"student": arch, "distill": p, "teacher": st.params["teacher"],
                                                "seed": st.seed, "data": io.sha256_file(args.data),
                                                "teachers": [io.sha256_file(t) for t in teacher_files]},
                               code=[__file__, distill.__file__, train.__file__])  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp, io.atomic_dir(args.out) as out:
            work = state or Path(tmp)
            for job in jobs:
                name = f"seed{job['seed']}_{job['kind']}"
                job["save"] = str(work / f"{name}.keras") if job["save"] else None
                job["result"] = str(work / f"{name}.json") if state else None
                job["checkpoint"] = str(work / f"{name}.epochs") if state else None
            results = run_jobs([{**common, **job} for job in jobs], p["workers"])
            for job in jobs:
                if job["save"]:
                    shutil.copy2(job["save"], out / f"student_{job['kind']}.keras")
        runs = list(by_seed(jobs, results).values())
        for run in runs:
            run["kd_gain_points"] = gain_points(run)
            log.info("distill: seed %d baseline %.4f, distilled %.4f, gain %+.2f points", run["seed"],
                     run["baseline_accuracy"], run["kd_accuracy"], run["kd_gain_points"])  # fmt: skip
        params_count = next(r["params"] for job, r in zip(jobs, results, strict=True) if job["kind"] == "kd")
        metrics = {
            "teacher_accuracy": teacher_accuracy,
            "teachers": len(teachers),
            "snapshots": p["snapshot_cycles"],
            "snapshot_seconds": round(snapshot_s, 1),
            "born_again": p["born_again"],
            "architecture": "teacher" if p["born_again"] else arch,
            "student_params": params_count,
            "workers": p["workers"],
            "training": {k: p[k] for k in TRAINING_KEYS},
            "loss": {k: v for k, v in vars(loss).items()},
            "seeds": [r["seed"] for r in runs],
            "runs": runs,
            "baseline_accuracy": distill.summarise([r["baseline_accuracy"] for r in runs]),
            "kd_accuracy": distill.summarise([r["kd_accuracy"] for r in runs]),
            "kd_gain_points": distill.summarise([r["kd_gain_points"] for r in runs]),
            "test_accuracy": runs[0]["kd_accuracy"],
            "baseline_test_accuracy": runs[0]["baseline_accuracy"],
            "teacher_targets_seconds": round(target_s, 1),
            "budget": budget.check(
                "student_kd", runs[0]["kd_accuracy"], teacher_accuracy, st.params["budget"]["max_accuracy_drop"]
            ),  # fmt: skip
        }
        st.finish(metrics, args.metrics)
        if state:
            shutil.rmtree(state)


if __name__ == "__main__":
    main()
