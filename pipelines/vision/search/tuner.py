"""The trial: `ArchTuner.run_trial` builds, converts, checks, trains and scores one student; the
project folder it keeps (resumable, shared by a distributed search's chief and workers)."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.rejections import LoggedRejections, save_state_atomically
from pipelines.common.seeding import seed_everything
from pipelines.vision.tfk import keras

log = logging.getLogger("pipelines.vision.search")

# After tfk: keras_tuner imports TensorFlow, which must see tfk's TF_USE_LEGACY_KERAS first.
import keras_tuner as kt  # noqa: E402

from pipelines.vision.search import screen  # noqa: E402
from pipelines.vision.search.objective import LIMITS, OBJECTIVE, file_costs, files_costs, objective_score, over_limits  # noqa: E402
from pipelines.vision.search.space import arch_from_values, values_hash  # noqa: E402

save_state_atomically()  # a killed search resumes (pipelines.common.rejections)


RECORD = "record.json"


ATTEMPTS = "attempts.log"


# The search params that do not change which trials run or what they score.
NOT_HASHED = ("max_trials", "bench_runs", "bench_seconds")


class ArchTuner(LoggedRejections, kt.Tuner):
    """Builds, rejects or trains, converts and scores one student per trial.

    Args:
        data: x_train, y_train (the trial subset), x_val, y_val uint8 images (N, H, W, C) and their labels.
        student: the `student` params; a trial's values override its keys.
        p: the `search` params; `max_*` limits given as `auto` are resolved here (`self.auto`).
        profile: the device profile for predicted latency.
        bench_settings: keyword arguments of `pipelines.edge.bench.benchmark` for measured latency.
        seed: every trial's model is initialised and trained from this seed.
    """

    def __init__(self, data: Mapping[str, np.ndarray], student: Mapping[str, Any], p: Mapping[str, Any],
                 profile: Mapping[str, Any], bench_settings: Mapping[str, Any], seed: int, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.data, self.student, self.p = data, dict(student), dict(p)
        self.profile, self.bench_settings, self.seed = dict(profile), dict(bench_settings), seed
        self.representative = data["x_train"][:100]
        self.num_classes = int(max(data["y_train"].max(), data["y_val"].max()) + 1)
        self.default_costs = default_costs(self.p, self.student, tuple(data["x_train"].shape[1:]), self.num_classes,
                                           self.representative, self.profile, self.bench_settings)  # fmt: skip
        self.auto = auto_limits(self.p, self.default_costs)
        self.p.update({k: how["value"] for k, how in self.auto.items()})
        self.proxy_images = data["x_train"][: self.p["proxy_batch"]].astype(np.float32) / 255.0  # as train.to_float
        self.known_costs: dict[str, dict] = {}  # values hash -> the untrained int8 file's costs (screening fills it)

    def costs_of(self, candidates: Sequence[Mapping[str, Any]]) -> list[dict]:
        """The untrained int8 file's costs of each candidate (the emulated ones counted in one process), remembered."""
        from pipelines.vision import convert

        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, values in enumerate(candidates):
                keras.backend.clear_session()
                seed_everything(self.seed)
                paths.append(Path(tmp) / f"candidate{i}_int8.tflite")
                paths[-1].write_bytes(convert.to_tflite_int8(self.build_model(values), self.representative[:8]))
            costs = files_costs(paths, self.p, self.profile, self.bench_settings)
        for values, c in zip(candidates, costs, strict=True):
            self.known_costs[values_hash(values)] = c
        return costs

    def untrained_costs(self, values: Mapping[str, Any]) -> dict:
        """The candidate's untrained int8 file's costs: remembered, or costed now."""
        return self.known_costs.get(values_hash(values)) or self.costs_of([values])[0]

    def has_limits(self) -> bool:
        return self.p["objective"] == "constrained" and any(self.p[k] is not None for k in LIMITS)

    def feasible(self, values: Mapping[str, Any]) -> bool:
        """Whether the candidate's untrained int8 file keeps every hard limit (costed once, remembered)."""
        if not self.has_limits():
            return True
        costs = self.untrained_costs(values)
        broken = over_limits(costs, self.p)
        if broken:
            log.info("search: a candidate over a limit is skipped before it becomes a trial: %s", "; ".join(broken))
        return not broken

    def build_model(self, values: Mapping[str, Any]) -> keras.Model:
        from pipelines.vision.student import build_student

        return build_student(tuple(self.data["x_train"].shape[1:]), self.num_classes,
                             {**self.student, **arch_from_values(values)})  # fmt: skip

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        from pipelines.edge import evaluate
        from pipelines.vision import convert, train

        started = time.time()
        values = trial.hyperparameters.values
        arch = arch_from_values(values)
        folder = Path(self.get_trial_dir(trial.trial_id))
        record = {"trial_id": trial.trial_id, "tuner_id": self.tuner_id, "values_hash": values_hash(values),
                  "arch": arch, "started": started}  # fmt: skip
        with open(folder / ATTEMPTS, "a") as f:  # one line per time this trial was started, by whom
            f.write(f"{self.tuner_id} {os.getpid()} {started:.3f}\n")
        untrained = None
        if self.p["latency_source"] == "emulated" or self.has_limits():
            untrained = self.untrained_costs(values)
            broken = over_limits(untrained, self.p)
            if broken:
                self._reject(record, untrained, broken, "before training", started, folder)
        keras.backend.clear_session()
        seed_everything(self.seed)
        model = self.build_model(values)
        record["keras_params"] = int(model.count_params())
        record["proxy"] = screen.naswot(model, self.proxy_images)  # taken untrained, as at screening
        keras.backend.clear_session()  # the proxy's forward pass moved BatchNorm's statistics: build afresh
        seed_everything(self.seed)
        model = self.build_model(values)
        epochs = int(values.get("tuner/epochs", self.p["epochs"]))
        min_steps = 0 if "tuner/epochs" in values else self.p["min_steps"]  # hyperband's own budget stays as it is
        settings = {"epochs": epochs, "min_steps": min_steps, "batch_size": self.p["batch_size"],
                    "learning_rate": self.p["learning_rate"],
                    "weight_decay": 0.0, "label_smoothing": 0.0, "augment_flip": False, "augment_shift": 0}  # fmt: skip
        d = self.data
        t0 = time.time()
        train.train_classifier(model, d["x_train"], d["y_train"], d["x_val"], d["y_val"], settings, self.seed)
        train_s = time.time() - t0
        int8 = folder / "model_int8.tflite"
        int8.write_bytes(convert.to_tflite_int8(model, self.representative))
        accuracy = evaluate.accuracy(int8, d["x_val"], d["y_val"])
        if self.p["latency_source"] == "emulated" and untrained is not None:
            # an instruction count depends on the graph, not the weights: the untrained file's stands
            costs = {**file_costs(int8, {**self.p, "latency_source": "predicted"}, self.profile, self.bench_settings),
                     **{k: untrained[k] for k in ("emulated_latency_ms", "arm_instructions", "latency_ms", "latency_from") if k in untrained}}  # fmt: skip
        else:
            costs = file_costs(int8, self.p, self.profile, self.bench_settings)
        record.update(val_accuracy=accuracy, epochs=epochs, train_seconds=round(train_s, 2))
        broken = over_limits(costs, self.p)
        if broken:
            self._reject(record, costs, broken, "after training", started, folder)
        score = objective_score(self.p["objective"], accuracy, costs["latency_ms"], self.p)
        record.update(costs, status="completed", score=score, seconds=round(time.time() - started, 2))
        _write_record(folder, record)
        log.info("search: trial %s %s -> val accuracy %.4f, %.4f ms, %d bytes, score %.4f (%.0f s)", trial.trial_id,
                 _short(arch), accuracy, costs["latency_ms"], costs["size_bytes"], score, record["seconds"])  # fmt: skip
        metrics = {OBJECTIVE: score, "val_accuracy": accuracy, "train_seconds": train_s}
        metrics.update({k: float(v) for k, v in costs.items() if isinstance(v, (int, float))})
        return metrics

    def _reject(self, record: dict, costs: Mapping[str, Any], broken: list[str], when: str, started: float,
                folder: Path) -> None:  # fmt: skip
        record.update(costs, status="infeasible", rejected=when, reason="; ".join(broken),
                      seconds=round(time.time() - started, 2))  # fmt: skip
        _write_record(folder, record)
        log.info("search: trial %s %s infeasible %s: %s", record["trial_id"], _short(record["arch"]), when,
                 record["reason"])  # fmt: skip
        raise kt.errors.FailedTrialError(f"infeasible {when}: {record['reason']}")


def default_costs(p: Mapping[str, Any], student: Mapping[str, Any], shape: tuple[int, ...], num_classes: int,
                  representative: np.ndarray, profile: Mapping[str, Any], bench_settings: Mapping[str, Any]) -> dict:  # fmt: skip
    """The default student's (`student` params) costs at this input shape, from its untrained int8
    file as every trial's are: what `auto` limits and the hypervolume's reference point scale by."""
    from pipelines.vision import convert
    from pipelines.vision.student import build_student

    keras.backend.clear_session()
    seed_everything(0)
    model = build_student(shape, num_classes, dict(student))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default_student_int8.tflite"
        path.write_bytes(convert.to_tflite_int8(model, representative))
        return file_costs(path, p, profile, bench_settings)


def auto_limits(p: Mapping[str, Any], costs: Mapping[str, Any]) -> dict:
    """The `search.max_*` limits given as `auto`, each the default student's figure (`costs`) x
    (1 + `auto_margin`): {limit: {"value", "default_student", "margin"}}."""
    out = {}
    for k in (k for k in LIMITS if p[k] == "auto"):
        value = costs[LIMITS[k]] * (1 + p["auto_margin"])
        out[k] = {"value": value if k == "max_latency_ms" else int(round(value)), "default_student": costs[LIMITS[k]],
                  "margin": p["auto_margin"]}  # fmt: skip
    return out


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    from pipelines.common import io

    io.write_json(folder / RECORD, dict(record))


def _short(arch: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in arch.items())


def role() -> str:
    """`chief`, a worker's id (`tuner0`, ...), or `single` when no distributed setting is given."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return tuner_id if tuner_id and "KERASTUNER_ORACLE_IP" in os.environ else "single"


def project_name(p: Mapping[str, Any], student: Mapping[str, Any], seed: int, data_path: str | Path) -> str:
    """keras-tuner's project folder: a hash of what decides the trials (params, data, and the code
    that builds, trains and scores them), so a killed search resumes only the same search."""
    from pipelines.common import io
    from pipelines.common.params import params_hash
    from pipelines.vision import convert, train
    from pipelines.vision import student as family

    decides = {k: v for k, v in p.items() if k not in NOT_HASHED}
    files = [*sorted(Path(__file__).parent.glob("*.py")), *(Path(m.__file__) for m in (family, train, convert))]
    code = {f"{f.parent.name}/{f.name}": io.sha256_path(f)[:16] for f in files}
    return "search-" + params_hash(decides, dict(student), {"seed": seed, "data": io.sha256_path(data_path)[:16]}, code)
