"""Hardware-aware architecture search over the student family, driven by keras-tuner.

The three parts keras-tuner keeps apart stay apart here: the search space (`define_space`, over
`build_student`'s keys), the strategy (a keras-tuner oracle: random, hyperband, bayesian, or
`EvolutionOracle`, regularized evolution), and the trial (`ArchTuner.run_trial`, which builds the
tf-keras model itself: keras-tuner's own model handling expects Keras 3).

A trial is judged on what would ship: its full-integer int8 TFLite file. Before training, the
untrained model is converted and its size, MACs and memory-access cost (pipelines/edge/analyze.py)
and latency (measured with pipelines/edge/bench.py, or predicted by pipelines/edge/cost.py for a
device profile) are checked against the hard limits of the `constrained` objective; a trial over
one is rejected with `FailedTrialError` (infeasible, never trained) and the search goes on. Then it
trains briefly, is converted again, scored by validation accuracy in the TFLite runtime, timed,
checked against the limits once more, and scored by the objective.

Every trial leaves `record.json` in its trial folder (status, architecture, costs, accuracy), so
infeasible trials keep their numbers and a distributed search's records sit in one place, and
`attempts.log` (one line per start: tuner id, process id, time), which shows that no trial ran twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.seeding import seed_everything
from pipelines.vision.tfk import keras

log = logging.getLogger(__name__)

# After tfk: keras_tuner imports TensorFlow, which must see tfk's TF_USE_LEGACY_KERAS first.
import keras_tuner as kt  # noqa: E402
from keras_tuner.src.engine import stateful  # noqa: E402


def _save_atomically(self: Any, fname: str) -> str:
    """keras-tuner's `Stateful.save`, written to a temporary file and renamed.

    keras-tuner rewrites oracle.json, trial.json and the tuner's JSON in place; a search killed
    while one was being written (seen: `kill -9` just as a trial began left an empty oracle.json)
    could not be reloaded. Written this way, a killed search always resumes.
    """
    from pipelines.common import io

    text = json.dumps(self.get_state())
    io.write_text(fname, text)
    return text


stateful.Stateful.save = _save_atomically  # every oracle, trial and tuner state file

OBJECTIVE = "score"
LIMITS = {"max_latency_ms": "latency_ms", "max_size_bytes": "size_bytes",
           "max_memory_access_bytes": "memory_access_bytes", "max_macs": "macs"}  # fmt: skip
SEARCH_BLOCKS = ("separable", "standard")
SEARCH_HEADS = ("flatten", "gap")
RECORD = "record.json"
ATTEMPTS = "attempts.log"
FINGERPRINT_SEED = 1234  # the weights every fingerprinted model is built with
PROBE_IMAGES = 8
CSV_COLUMNS = (
    "trial_id", "status", "rejected", "score", "accuracy", "latency_ms", "measured_latency_ms",
    "predicted_latency_ms", "size_bytes", "params", "macs", "memory_access_bytes", "pareto", "depth", "ds_widths",
    "kernel_size", "block", "expansion", "squeeze_excite", "stem_stride", "width_multiplier", "head", "train_seconds", "seconds",
)  # fmt: skip
# The search params that do not change which trials run or what they score.
NOT_HASHED = ("max_trials", "bench_runs", "bench_seconds")


# ---- the search space ----


def search_space(p: Mapping[str, Any]) -> dict[str, Any]:
    """The search space from the `search` params (the rules between keys are the schema's)."""
    from pipelines.common.params import comma_list

    space = {k: p[k] for k in ("kernel_sizes", "expansions", "squeeze_excite", "stem_stride", "width_percents", "depths", "widths")}
    for key, allowed in (("blocks", SEARCH_BLOCKS), ("heads", SEARCH_HEADS)):
        space[key] = comma_list(p[key], f"search.{key}", allowed, required=True)
    return space


def define_space(hp: kt.HyperParameters, space: Mapping[str, Any]) -> kt.HyperParameters:
    """Kernel size, block type, expansion (separable blocks only), squeeze-excite, strided stem, width multiplier,
    depth and the width of each block that depth makes active, head."""
    hp.Choice("kernel_size", list(space["kernel_sizes"]))
    hp.Choice("block", list(space["blocks"]))
    with hp.conditional_scope("block", ["separable"]):
        hp.Choice("expansion", list(space["expansions"]))
    se = {"never": [False], "always": [True], "both": [False, True]}[space["squeeze_excite"]]
    hp.Choice("squeeze_excite", se)
    hp.Choice("stem_stride", {"never": [False], "always": [True], "both": [False, True]}[space["stem_stride"]])
    hp.Choice("width_percent", list(space["width_percents"]))
    depths = sorted(space["depths"])
    hp.Choice("depth", depths)
    for i in range(max(depths)):
        with hp.conditional_scope("depth", [d for d in depths if d > i]):
            hp.Choice(f"width{i}", list(space["widths"]))
    hp.Choice("head", list(space["heads"]))
    return hp


def arch_from_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters as `student` keys (what `distill --arch` reads)."""
    block = values["block"]
    return {
        "ds_widths": [int(values[f"width{i}"]) for i in range(int(values["depth"]))],
        "head": values["head"],
        "kernel_size": int(values["kernel_size"]),
        "block": block,
        "expansion": int(values.get("expansion", 1)) if block == "separable" else 1,
        "squeeze_excite": bool(values["squeeze_excite"]),
        "stem_stride": bool(values["stem_stride"]),
        "width_multiplier": int(values["width_percent"]) / 100,
    }


def values_hash(values: Mapping[str, Any]) -> str:
    """A stable hash of a trial's hyperparameters (keras-tuner's `tuner/*` bookkeeping left out)."""
    kept = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(model: keras.Model, probe: np.ndarray) -> str:
    """Functional-equivalence fingerprint: the outputs on a fixed probe batch, rounded, hashed.

    Taken on the untrained model built with fixed seeds (`build_fingerprinted`), so a duplicate is
    caught before it costs any training: two hyperparameter sets that build the same network get the
    same weights and so the same outputs; different networks almost surely do not.
    """
    out = model(probe, training=False).numpy()
    blob = np.round(out.astype(np.float64), 4).tobytes() + str(model.count_params()).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_fingerprinted(build: Callable[[], keras.Model]) -> keras.Model:
    keras.backend.clear_session()
    seed_everything(FINGERPRINT_SEED)
    return build()


# ---- objectives and limits ----


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, weight: float = -0.07) -> float:
    """MnasNet's soft-constrained reward: accuracy x (latency / target) ^ weight."""
    return float(accuracy * (latency_ms / target_ms) ** weight)


def objective_score(objective: str, accuracy: float, latency_ms: float, p: Mapping[str, Any]) -> float:
    """The value the oracle maximises: accuracy (`accuracy`, `constrained`) or the MnasNet reward (`mnas`)."""
    if objective == "mnas":
        return mnas_reward(accuracy, latency_ms, p["mnas_target_ms"], p["mnas_weight"])
    return float(accuracy)


def over_limits(costs: Mapping[str, Any], p: Mapping[str, Any]) -> list[str]:
    """The hard limits (`search.max_*`) a trial breaks (only the `constrained` objective has hard limits)."""
    if p["objective"] != "constrained":
        return []
    return [f"{costs[key]:g} {key} > search.{limit} {p[limit]:g}" for limit, key in LIMITS.items()
            if p[limit] is not None and costs.get(key) is not None and costs[key] > p[limit]]  # fmt: skip


def file_costs(path: Path, p: Mapping[str, Any], profile: Mapping[str, Any], bench_settings: Mapping[str, Any]) -> dict:
    """Size, params, MACs, memory access and latency of an int8 .tflite file (latency per `latency_source`)."""
    from pipelines.edge import analyze, bench, cost

    a = analyze.analyze(path)
    t = a["totals"]
    costs = {k: int(t[k]) for k in ("size_bytes", "params", "macs", "memory_access_bytes", "peak_activation_bytes")}
    costs["predicted_latency_ms"] = round(cost.predict_ms(a["ops"], profile), 5)
    costs["measured_latency_ms"] = None
    if p["latency_source"] == "measured":
        costs["measured_latency_ms"] = bench.benchmark(path, **bench_settings)["latency_p50_ms"]
    costs["latency_ms"] = costs[f"{p['latency_source']}_latency_ms"]
    return costs


# ---- the strategy: regularized evolution ----


class EvolutionOracle(kt.Oracle):
    """Regularized evolution (Real et al., 2019) as a keras-tuner oracle.

    Until `population` trials have completed, candidates are random. Then the population is the last
    `population` completed trials (aging: the oldest dies, however good), `tournament` of them are
    drawn, and the best one's hyperparameters are copied with exactly one hyperparameter mutated
    (conditional ones it switches on are sampled, those it switches off are dropped). A candidate is
    not tried when its hyperparameters were already tried, nor when `fingerprint(values)` matches an
    earlier trial's (the same network under other names); both are counted in `deduplicated`.
    After `max_attempts / 4` such rejections in a row, candidates are random; after `max_attempts`
    the space is taken as exhausted and the search stops. `initial` candidates (e.g. the current
    student) are tried first. Infeasible (failed) trials never join the population. All state
    lives in the oracle's saved state and the trials, so a resumed search continues where it stopped.
    """

    def __init__(self, population: int = 8, tournament: int = 3,
                 fingerprint: Callable[[Mapping[str, Any]], str] | None = None, max_attempts: int = 200,
                 initial: Sequence[Mapping[str, Any]] = (), **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.initial = [dict(v) for v in initial]
        if tournament > population:
            raise ValueError(f"tournament ({tournament}) must be <= population ({population})")
        self.population, self.tournament = population, tournament
        self.fingerprint_fn, self.max_attempts = fingerprint, max_attempts
        self.deduplicated = {"hyperparameters": 0, "fingerprint": 0}
        self._fingerprints: dict[str, str] = {}  # values hash -> fingerprint, a cache

    def _completed(self) -> list[kt.engine.trial.Trial]:
        trials = [self.trials[t] for t in self.end_order if t in self.trials]
        return [t for t in trials if t.status == "COMPLETED" and t.score is not None]

    def _rng(self) -> random.Random:
        self._seed_state += 1
        return random.Random(f"{self.seed}-{self._seed_state}")

    def _sample(self, parent: Mapping[str, Any] | None, mutate: str | None, rng: random.Random) -> dict[str, Any]:
        """Active values of the space: the parent's, `mutate` changed, others sampled when missing."""
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if parent is not None and hp.name in parent and hp.name != mutate:
                hps.values[hp.name] = parent[hp.name]
            elif hp.name == mutate:
                hps.values[hp.name] = _other_value(hp, parent[hp.name], rng)
            else:
                hps.values[hp.name] = hp.random_sample(rng.randrange(2**31))
        return {k: v for k, v in hps.values.items() if hps.is_active(k)}

    def mutation_candidates(self, values: Mapping[str, Any]) -> list[str]:
        """Active hyperparameters with more than one possible value."""
        hps = self.hyperparameters.copy()
        hps.values.update(values)
        return [hp.name for hp in hps.space if hp.name in values and hps.is_active(hp) and _choices(hp) != 1]

    def candidate(self, rng: random.Random, explore: bool = False) -> tuple[dict[str, Any], str | None]:
        """One candidate (values, mutated hyperparameter or None when random; `explore`: random)."""
        completed = self._completed()
        if explore or len(completed) < self.population:
            return self._sample(None, None, rng), None
        alive = completed[-self.population :]
        drawn = rng.sample(alive, self.tournament)
        parent = max(drawn, key=lambda t: t.score)
        values = {k: v for k, v in parent.hyperparameters.values.items() if not k.startswith("tuner/")}
        names = self.mutation_candidates(values)
        if not names:
            return self._sample(None, None, rng), None
        name = rng.choice(names)
        return self._sample(values, name, rng), name

    def _fingerprint_of(self, values: Mapping[str, Any]) -> str | None:
        if self.fingerprint_fn is None:
            return None
        key = values_hash(values)
        if key not in self._fingerprints:
            self._fingerprints[key] = self.fingerprint_fn(values)
        return self._fingerprints[key]

    def _known_fingerprints(self, trial_id: str) -> set[str]:
        known = set()
        for tid, t in self.trials.items():
            if tid != trial_id and t.hyperparameters.values:
                fp = self._fingerprint_of({k: v for k, v in t.hyperparameters.values.items()
                                           if not k.startswith("tuner/")})  # fmt: skip
                if fp is not None:
                    known.add(fp)
        return known

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        rng = self._rng()
        for values in self.initial:  # e.g. the current student: the search starts from a known point
            if not self._duplicate(values):
                log.info("search: trial %s: an initial candidate", trial_id)
                return {"status": "RUNNING", "values": values}
        known = None
        for attempt in range(self.max_attempts):
            # when every mutation of the winners was tried already, look elsewhere in the space
            values, mutated = self.candidate(rng, explore=attempt >= self.max_attempts // 4)
            if self._duplicate(values):
                self.deduplicated["hyperparameters"] += 1
                continue
            if self.fingerprint_fn is not None:
                known = self._known_fingerprints(trial_id) if known is None else known
                if self._fingerprint_of(values) in known:
                    self.deduplicated["fingerprint"] += 1
                    log.info("search: candidate for trial %s builds the same network as an earlier trial; not tried",
                             trial_id)  # fmt: skip
                    continue
            log.info("search: trial %s: %s", trial_id, f"mutated {mutated}" if mutated else "random")
            return {"status": "RUNNING", "values": values}
        log.info("search: no new candidate in %d attempts; the space looks exhausted", self.max_attempts)
        return {"status": "STOPPED", "values": None}

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(population=self.population, tournament=self.tournament, deduplicated=self.deduplicated)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.deduplicated = dict(state.get("deduplicated", self.deduplicated))


def _choices(hp: Any) -> int | None:
    """Number of values a hyperparameter can take (None: a continuum)."""
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return 1
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return 2
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return len(hp.values)
    return None


def _other_value(hp: Any, current: Any, rng: random.Random) -> Any:
    """A value of `hp` different from `current`."""
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return rng.choice([v for v in hp.values if v != current])
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return not current
    for _ in range(100):
        value = hp.random_sample(rng.randrange(2**31))
        if value != current:
            return value
    return current


def values_of(student: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hyperparameters that build `student`, or None when the space cannot express it."""
    from pipelines.vision.student import STUDENT_DEFAULTS

    s = {**STUDENT_DEFAULTS, **student}
    widths = list(s["ds_widths"])
    values = {"kernel_size": s["kernel_size"], "block": s["block"], "squeeze_excite": bool(s["squeeze_excite"]),
              "stem_stride": bool(s["stem_stride"]), "width_percent": round(s["width_multiplier"] * 100), "depth": len(widths), "head": s["head"],
              **{f"width{i}": w for i, w in enumerate(widths)}}  # fmt: skip
    if s["block"] == "separable":
        values["expansion"] = s["expansion"]
    hp = define_space(kt.HyperParameters(), space)
    hp.values.update(values)
    for h in hp.space:
        active = hp.is_active(h)
        if active != (h.name in values) or active and values[h.name] not in h.values:
            return None
    return values if arch_from_values(values) == {k: s[k] for k in arch_from_values(values)} else None


def make_oracle(p: Mapping[str, Any], space: Mapping[str, Any], seed: int,
                fingerprint: Callable[[Mapping[str, Any]], str] | None = None,
                initial: Sequence[Mapping[str, Any]] = ()) -> kt.Oracle:  # fmt: skip
    """The oracle named by `search.oracle`, given the full space (a distributed chief needs it).
    `fingerprint` and `initial` are for the evolution oracle."""
    hp = define_space(kt.HyperParameters(), space)
    common = {"objective": kt.Objective(OBJECTIVE, "max"), "hyperparameters": hp, "seed": seed,
              "max_consecutive_failed_trials": None}  # infeasible trials are expected  # fmt: skip
    kind = p["oracle"]
    if kind == "evolution":
        return EvolutionOracle(population=p["population"], tournament=p["tournament"], fingerprint=fingerprint,
                               initial=initial, max_trials=p["max_trials"], **common)  # fmt: skip
    if kind == "random":
        return kt.oracles.RandomSearchOracle(max_trials=p["max_trials"], **common)
    if kind == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=p["max_trials"], **common)
    if kind == "hyperband":
        oracle = kt.oracles.HyperbandOracle(max_epochs=p["epochs"], factor=p["hyperband_factor"], **common)
        oracle.max_trials = p["max_trials"]  # its schedule decides the trials; this caps them
        return oracle
    raise ValueError(f"unknown oracle {kind!r}")


# ---- the trial ----


class ArchTuner(kt.Tuner):
    """Builds, rejects or trains, converts and scores one student per trial.

    Args:
        data: x_train, y_train (the trial subset), x_val, y_val uint8 images (N, H, W, C) and their labels.
        student: the `student` params; a trial's values override its keys.
        p: the `search` params.
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
        keras.backend.clear_session()
        seed_everything(self.seed)
        model = self.build_model(values)
        record["keras_params"] = int(model.count_params())
        if self.p["objective"] == "constrained" and any(self.p[k] is not None for k in LIMITS):
            untrained = folder / "untrained_int8.tflite"
            untrained.write_bytes(convert.to_tflite_int8(model, self.representative))
            costs = file_costs(untrained, self.p, self.profile, self.bench_settings)
            broken = over_limits(costs, self.p)
            if broken:
                self._reject(record, costs, broken, "before training", started, folder)
        epochs = int(values.get("tuner/epochs", self.p["epochs"]))
        settings = {"epochs": epochs, "batch_size": self.p["batch_size"], "learning_rate": self.p["learning_rate"],
                    "weight_decay": 0.0, "label_smoothing": 0.0, "augment_flip": False, "augment_shift": 0}  # fmt: skip
        d = self.data
        t0 = time.time()
        train.train_classifier(model, d["x_train"], d["y_train"], d["x_val"], d["y_val"], settings, self.seed)
        train_s = time.time() - t0
        int8 = folder / "model_int8.tflite"
        int8.write_bytes(convert.to_tflite_int8(model, self.representative))
        accuracy = evaluate.accuracy(int8, d["x_val"], d["y_val"])
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
        metrics.update({k: float(v) for k, v in costs.items() if v is not None})
        return metrics

    def _reject(self, record: dict, costs: Mapping[str, Any], broken: list[str], when: str, started: float,
                folder: Path) -> None:  # fmt: skip
        record.update(costs, status="infeasible", rejected=when, reason="; ".join(broken),
                      seconds=round(time.time() - started, 2))  # fmt: skip
        _write_record(folder, record)
        log.info("search: trial %s %s infeasible %s: %s", record["trial_id"], _short(record["arch"]), when,
                 record["reason"])  # fmt: skip
        raise kt.errors.FailedTrialError(f"infeasible {when}: {record['reason']}")


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    from pipelines.common import io

    io.write_json(folder / RECORD, dict(record))


def _short(arch: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in arch.items())


# ---- distributed search ----


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
    code = {m.__name__: io.sha256_path(m.__file__)[:16] for m in (sys.modules[__name__], family, train, convert)}
    return "search-" + params_hash(decides, dict(student), {"seed": seed, "data": io.sha256_path(data_path)[:16]}, code)


# ---- results ----


def csv_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A trial as a row of trials.csv."""
    arch = r["arch"]
    return {**{k: r.get(k) for k in CSV_COLUMNS}, **arch, "depth": len(arch["ds_widths"]),
            "ds_widths": "-".join(map(str, arch["ds_widths"])), "accuracy": r.get("val_accuracy")}  # fmt: skip


def chosen(best: Mapping[str, Any], p: Mapping[str, Any]) -> dict[str, Any]:
    """The best trial as the JSON `distill --arch` reads: its student keys and its figures."""
    return {"student": dict(best["arch"]), "trial_id": best["trial_id"], "score": best["score"],
            "val_accuracy": best["val_accuracy"], "latency_ms": best["latency_ms"], "size_bytes": best["size_bytes"],
            "objective": p["objective"]}  # fmt: skip


def trial_metrics(r: Mapping[str, Any]) -> dict[str, float]:
    """A trial's figures for its MLflow child run."""
    numbers = {k: r[k] for k in CSV_COLUMNS if isinstance(r.get(k), (int, float)) and k != "trial_id"}
    return {**numbers, "val_accuracy": r.get("val_accuracy"), "infeasible": float(r["status"] == "infeasible")}


def summary(rows: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any], front: list[str], p: Mapping[str, Any],
            deduplicated: Mapping[str, int], done_before: int, search_seconds: float, project: Path) -> dict[str, Any]:  # fmt: skip
    """metrics/search.json: how many trials ran and how they ended, and the best one."""
    top = best(rows)
    return {
        "oracle": p["oracle"],
        "objective": p["objective"],
        "latency_source": p["latency_source"],
        "device": p["device"] if p["latency_source"] == "predicted" else "host",
        "trials": len(rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "infeasible": sum(r["status"] == "infeasible" for r in rows),
        "infeasible_before_training": sum(r.get("rejected") == "before training" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "deduplicated": sum(deduplicated.values()),
        "deduplicated_by": dict(deduplicated),
        "resumed_trials": done_before,
        "search_seconds": round(search_seconds, 1),
        "trial_seconds": round(sum(r.get("seconds") or 0 for r in rows), 1),
        "best_trial": top["trial_id"],
        "best_score": top["score"],
        "best_val_accuracy": top["val_accuracy"],
        "best_latency_ms": top["latency_ms"],
        "best_size_bytes": top["size_bytes"],
        "best_macs": top["macs"],
        "best_arch": dict(chosen),
        "pareto_front": front,
        "budgets": {k: p[k] for k in LIMITS} if p["objective"] == "constrained" else {},
        "project": str(project),
    }


def collect(project_dir: str | Path, oracle: kt.Oracle) -> list[dict[str, Any]]:
    """Every trial the oracle knows, in trial-id order: keras-tuner's status joined with its record."""
    rows = []
    for tid in sorted(oracle.trials):
        t = oracle.trials[tid]
        path = Path(project_dir) / f"trial_{tid}" / RECORD
        rec = json.loads(path.read_text()) if path.is_file() else {}
        status = rec.get("status") or ("failed" if t.status == "FAILED" else str(t.status).lower())
        if t.status == "FAILED" and status == "completed":
            status = "failed"
        if t.status in ("RUNNING", "IDLE"):
            status = "unfinished"
        values = {k: v for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")}
        rows.append({**rec, "trial_id": tid, "status": status, "arch": rec.get("arch") or arch_from_values(values),
                     "values": values, "message": (t.message or "").strip().splitlines()[-1] if t.message else None})  # fmt: skip
    return rows


def best(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The completed trial with the highest score (ties: lower latency, then fewer bytes), or None."""
    done = [r for r in rows if r["status"] == "completed"]
    if not done:
        return None
    return max(done, key=lambda r: (r["score"], -r["latency_ms"], -r["size_bytes"]))


def probe_batch(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """The fixed inputs every fingerprint is taken on: uniform noise in the model's input range."""
    return np.random.default_rng(seed).random((PROBE_IMAGES, *shape)).astype(np.float32)
