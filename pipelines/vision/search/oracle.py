"""The strategy: regularized evolution as a keras-tuner oracle, and the oracle of each `search.oracle`."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipelines.vision import tfk  # noqa: F401 - the Keras flavour, before keras_tuner imports TensorFlow

log = logging.getLogger("pipelines.vision.search")

# After tfk: keras_tuner imports TensorFlow, which must see tfk's TF_USE_LEGACY_KERAS first.
import keras_tuner as kt  # noqa: E402

from pipelines.common.rejections import TimeBudget  # noqa: E402
from pipelines.vision.search.objective import OBJECTIVE  # noqa: E402
from pipelines.vision.search.space import define_space, random_values, values_hash  # noqa: E402

FEASIBILITY_CHECKS = 10  # per trial: a space mostly over the limits must not stall the oracle


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
    student, then the screened shortlist) are tried first. With `feasible`, a candidate it refuses
    (over a hard limit, judged on its untrained int8 file) is skipped before it becomes a trial,
    counted in `over_limits`; at most `FEASIBILITY_CHECKS` such checks per trial, then the next
    candidate is tried as it is (the trial rejects it if it must). Infeasible (failed) trials never join the population. All state
    lives in the oracle's saved state and the trials, so a resumed search continues where it stopped.
    """

    def __init__(self, population: int = 8, tournament: int = 3,
                 fingerprint: Callable[[Mapping[str, Any]], str] | None = None, max_attempts: int = 200,
                 initial: Sequence[Mapping[str, Any]] = (),
                 feasible: Callable[[Mapping[str, Any]], bool] | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.feasible_fn, self.over_limits = feasible, 0
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
        return random_values(self.hyperparameters, rng, parent, mutate, _other_value)

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
        known, checks = None, 0
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
            if self.feasible_fn is not None and checks < FEASIBILITY_CHECKS:
                checks += 1
                if not self.feasible_fn(values):
                    self.over_limits += 1
                    continue
            log.info("search: trial %s: %s", trial_id, f"mutated {mutated}" if mutated else "random")
            return {"status": "RUNNING", "values": values}
        log.info("search: no new candidate in %d attempts; the space looks exhausted", self.max_attempts)
        return {"status": "STOPPED", "values": None}

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(population=self.population, tournament=self.tournament, deduplicated=self.deduplicated,
                     over_limits=self.over_limits)  # fmt: skip
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.deduplicated = dict(state.get("deduplicated", self.deduplicated))
        self.over_limits = int(state.get("over_limits", 0))


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


def make_oracle(p: Mapping[str, Any], space: Mapping[str, Any], seed: int,
                fingerprint: Callable[[Mapping[str, Any]], str] | None = None,
                initial: Sequence[Mapping[str, Any]] = (), deadline: float | None = None) -> kt.Oracle:  # fmt: skip
    """The oracle named by `search.oracle`, given the full space (a distributed chief needs it).
    `fingerprint` and `initial` are for the evolution oracle; no trial starts after `deadline`."""
    hp = define_space(kt.HyperParameters(), space)
    common = {"objective": kt.Objective(OBJECTIVE, "max"), "hyperparameters": hp, "seed": seed,
              "max_consecutive_failed_trials": None}  # infeasible trials are expected  # fmt: skip
    kind = p["oracle"]
    if kind == "evolution":
        oracle = TimedEvolutionOracle(population=p["population"], tournament=p["tournament"], fingerprint=fingerprint,
                                 initial=initial, max_trials=p["max_trials"], **common)  # fmt: skip
    elif kind == "random":
        oracle = RandomOracle(max_trials=p["max_trials"], **common)
    elif kind == "bayesian":
        oracle = BayesianOracle(max_trials=p["max_trials"], **common)
    elif kind == "hyperband":
        oracle = HyperbandOracle(max_epochs=p["epochs"], factor=p["hyperband_factor"], **common)
        oracle.max_trials = p["max_trials"]  # its schedule decides the trials; this caps them
    else:
        raise ValueError(f"unknown oracle {kind!r}")
    oracle.deadline = deadline
    return oracle


class TimedEvolutionOracle(TimeBudget, EvolutionOracle):
    pass


class RandomOracle(TimeBudget, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(TimeBudget, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(TimeBudget, kt.oracles.HyperbandOracle):
    pass
