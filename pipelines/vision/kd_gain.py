"""What distillation gains: per seed, a baseline student (labels only) and a distilled one trained
with the same architecture, data and budget, here or side by side in worker processes; `kd_gain`
is the distilled student's test accuracy over the baseline's, in points, with its mean and 95 %
interval over seeds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.common import io
from pipelines.common.params import comma_list
from pipelines.common.stats import summarise
from pipelines.common.workers import worker_pool
from pipelines.vision.distill import fit_student
from pipelines.vision.evaluate import accuracy
from pipelines.vision.losses import DistillLoss
from pipelines.vision.teacher_targets import TeacherTargets, teacher_targets
from pipelines.vision.tfk import keras

log = logging.getLogger("pipelines.vision.distill")
# What a baseline student's accuracy depends on besides its architecture (recorded in the metrics).
TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "augment_flip", "born_again")


@dataclass
class Teachers:
    """The teacher models the student learns from, and their targets on the training images."""

    models: list[keras.Model]
    targets: TeacherTargets
    snapshot_seconds: float
    targets_seconds: float


def teacher_files(p: dict, teacher_path: str | Path, resolve: Callable[[str], Path]) -> list[Path]:
    """The teacher and the `ensemble_teachers` files (paths from params through `resolve`)."""
    return [Path(teacher_path), *(resolve(t) for t in comma_list(p["ensemble_teachers"], "distill.ensemble_teachers"))]


def load_teachers(p: dict, teacher_path: str | Path, resolve: Callable[[str], Path], ds, teacher_params: dict,
                  seed: int) -> Teachers:  # fmt: skip
    """The teacher, the `ensemble_teachers` files and a snapshot ensemble when `snapshot_cycles` > 0;
    their averaged outputs on the training images, with the first teacher's attention maps and
    embedding when the loss has attention transfer or relational KD."""
    from pipelines.vision import train
    from pipelines.vision.tfk import load_model

    teachers = [load_model(path) for path in teacher_files(p, teacher_path, resolve)]
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
    features = DistillLoss.from_params(p).uses_teacher_maps
    targets = teacher_targets(teachers, ds.x_train, p["temperature"], p["augment_flip"],
                              standardise=p["logit_standardize"], features=features)  # fmt: skip
    return Teachers(teachers, targets, snapshot_s, time.time() - t0)


def student_jobs(first_seed: int, seeds: int, loss: DistillLoss) -> list[dict]:
    """Per seed, the baseline student's job (labels only), then the distilled one's; the first
    seed's two students are the ones saved."""
    return [{"seed": first_seed + i, "kind": kind, "loss": vars(kind_loss), "save": i == 0}
            for i in range(seeds) for kind, kind_loss in (("baseline", loss.labels_only()), ("kd", loss))]  # fmt: skip


def train_student(job: dict) -> dict:
    """One student of one seed: build, train on `job['loss']`, test; saved to `job['save']` when
    set. Runs in a worker process (`distill.workers` > 1) or in the stage's own."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import train
    from pipelines.vision.data import Dataset
    from pipelines.vision.student import build_student
    from pipelines.vision.tfk import load_model

    p, loss = job["distill"], DistillLoss(**job["loss"])
    ds = Dataset.load(job["data"])
    seed_everything(job["seed"])
    if p["born_again"]:
        model = train.build_teacher(ds.x_train.shape[1:], len(ds.class_names), job["teacher_params"])
    else:
        model = build_student(ds.x_train.shape[1:], len(ds.class_names), job["arch"])
    teacher = load_model(job["teacher"]) if loss.hint_weight > 0 else None  # the other terms use `targets`
    log.info("distill: seed %d, %s student (%d parameters)", job["seed"], job["kind"], model.count_params())
    history = fit_student(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, loss, p, job["seed"],
                          targets=job["targets"], teacher=teacher, checkpoint=job.get("checkpoint"))  # fmt: skip
    result = {
        "kind": job["kind"],
        "accuracy": accuracy(model, ds.x_test, ds.y_test),
        "val_accuracy": history["val_accuracy"][-1],
        "seconds": round(sum(history["seconds"]), 1),  # training, with the epochs before a resume
        "params": int(model.count_params()),
        "history": history,
    }
    if job["save"]:
        model.save(job["save"])
    if job.get("result"):  # after the model: a result file means the student's work is all on disk
        io.write_json(job["result"], result)
    log.info("distill: seed %d, %s student: test accuracy %.4f (%.0f s)", job["seed"], job["kind"],
             result["accuracy"], result["seconds"])  # fmt: skip
    return result


def _tensorflow_threads(threads: int) -> None:
    from pipelines.vision.tfk import tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def train_students(jobs: list[dict], workers: int) -> list[dict]:
    """`train_student` for every job, in order: here, or in `workers` fresh processes side by side,
    each with an equal share of the cores for TensorFlow's threads. A job whose `result` file
    exists (it finished in a run that was then killed) is not trained again."""
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
        with worker_pool(workers, _tensorflow_threads, (threads,)) as pool:
            trained = iter(list(pool.map(train_student, todo)))
    return [kept[i] if i in kept else next(trained) for i in range(len(jobs))]


def by_seed(jobs: list[dict], results: list[dict]) -> dict[int, dict]:
    """Per seed, each job kind's accuracy, val_accuracy and seconds as `<kind>_<figure>`."""
    runs = {seed: {"seed": seed} for seed in sorted({job["seed"] for job in jobs})}
    for job, r in zip(jobs, results, strict=True):
        runs[job["seed"]].update({f"{job['kind']}_{k}": r[k] for k in ("accuracy", "val_accuracy", "seconds")})
    return runs


def gain_points(run: dict) -> float:
    """kd_gain of one seed: the distilled student's test accuracy over the baseline's, in points."""
    return round((run["kd_accuracy"] - run["baseline_accuracy"]) * 100, 3)


def seed_runs(jobs: list[dict], results: list[dict]) -> list[dict]:
    """Per seed, both students' figures and the seed's `kd_gain_points`."""
    runs = list(by_seed(jobs, results).values())
    for run in runs:
        run["kd_gain_points"] = gain_points(run)
        log.info("distill: seed %d baseline %.4f, distilled %.4f, gain %+.2f points", run["seed"],
                 run["baseline_accuracy"], run["kd_accuracy"], run["kd_gain_points"])  # fmt: skip
    return runs


def kd_gain(runs: Sequence[dict]) -> dict[str, dict]:
    """Mean, spread and 95 % interval over seeds of both students' accuracy and of the gain."""
    return {key: summarise([r[key] for r in runs]) for key in ("baseline_accuracy", "kd_accuracy", "kd_gain_points")}


def chain_student(teacher_val_accuracy: float, runs: Sequence[dict]) -> dict:
    """Which student the chain goes on with (prune, quantize): the distilled one when distilling
    did not lower validation accuracy (mean over seeds), else the labels-only one, which pruning
    then fine-tunes on labels. Whether the teacher is weaker than the labels-only students is said
    too: distilling from such a teacher is the usual reason it does not help."""
    mean = lambda key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    baseline, kd = mean("baseline_val_accuracy"), mean("kd_val_accuracy")
    weaker = teacher_val_accuracy < baseline
    student = "kd" if kd >= baseline else "baseline"
    said = f"on validation data the teacher reaches {teacher_val_accuracy:.2%}, the labels-only students {baseline:.2%}, " \
           f"the distilled ones {kd:.2%}"  # fmt: skip
    reason = ("distillation helped: " if student == "kd" else "distillation lowered accuracy: ") + said
    if weaker:
        reason += "; the teacher is weaker than its students (teacher.* params: more steps, widths, augmentation)"
    return {"student": student, "teacher_weaker_than_baseline": weaker, "teacher_val_accuracy": teacher_val_accuracy,
            "baseline_val_accuracy": round(baseline, 6), "kd_val_accuracy": round(kd, 6), "reason": reason}  # fmt: skip
