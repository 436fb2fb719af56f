"""GNN architecture and training search, driven by keras-tuner.

keras-tuner cannot train PyG models itself, but its oracles and bookkeeping do not care what a
trial trains: `GNNTuner.run_trial` builds and trains the PyG model and returns a dict of
metrics. The search space (`define_space`), the strategy (a keras-tuner oracle) and the trial
execution (`run_trial`) stay three separate things. A trial over the parameter or time limit
is rejected with `FailedTrialError`, so the search goes on; no new trial starts once the search's
wall-clock budget is spent. The project folder is kept (`project_name`: a hash of what decides the
trials) and its state files are written atomically, so a killed search resumes where it stopped.

The score is validation accuracy, less `cost_weight` x parameters / max_params when a size term
is asked for (the GNN's parameters: what a device stores and, per layer, multiplies).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# keras-tuner imports Keras 3; on the torch backend that loads no TensorFlow into this torch process.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras_tuner as kt  # noqa: E402

from pipelines.common.rejections import LoggedRejections, TimeBudget, save_state_atomically  # noqa: E402
from pipelines.graph.models import build_node_model, count_params  # noqa: E402
from pipelines.graph.train import NodeTensors, TimeLimitExceeded, fit_node_model  # noqa: E402

save_state_atomically()
log = logging.getLogger(__name__)
OBJECTIVE = "score"
# The search params that do not change which trials run or what they score.
NOT_HASHED = ("max_trials", "max_search_seconds")
SEARCH_CONVS = ("gcn", "gat", "sage", "gin")


def search_space(p: dict) -> dict:
    """The search space from params (the rules between keys are the schema's)."""
    from pipelines.common.params import comma_list

    convs = comma_list(p["convs"], "gnn_search.convs", SEARCH_CONVS, required=True)
    return {**{k: p[k] for k in ("layers", "hidden", "heads", "dropout_min", "dropout_max", "lr_min", "lr_max",
                                 "weight_decay_min", "weight_decay_max")}, "convs": convs}  # fmt: skip


def define_space(hp: kt.HyperParameters, space: Mapping[str, Any]) -> kt.HyperParameters:
    """Conv type, depth, width, GAT heads (only when the conv is GAT), dropout, learning rate, weight decay."""
    hp.Choice("conv", list(space["convs"]))
    hp.Choice("layers", list(space["layers"]))
    hp.Choice("hidden", list(space["hidden"]))
    with hp.conditional_scope("conv", ["gat"]):
        hp.Choice("heads", list(space["heads"]))
    hp.Float("dropout", space["dropout_min"], space["dropout_max"], step=0.1)
    hp.Float("lr", space["lr_min"], space["lr_max"], sampling="log")
    hp.Float("weight_decay", space["weight_decay_min"], space["weight_decay_max"], sampling="log")
    return hp


def trial_config(values: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """A trial's values as a `gnn_train.node_models` entry, so gnn_train can train it like any other."""
    conv = values["conv"]
    return {
        "conv": conv, "hidden": int(values["hidden"]), "layers": int(values["layers"]),
        "heads": int(values.get("heads", 1)) if conv == "gat" else 1,
        "dropout": round(float(values["dropout"]), 4),
        "attention_dropout": round(float(values["dropout"]), 4) if conv == "gat" else 0.0,  # as in the GAT paper
        "lr": float(values["lr"]), "weight_decay": float(values["weight_decay"]),
        "weight_decay_first_only": False, "epochs": epochs,
    }  # fmt: skip


class GNNTuner(LoggedRejections, kt.Tuner):
    """Trains one PyG node classifier per trial and scores it on validation accuracy (mean over seeds)."""

    def __init__(self, data: NodeTensors, epochs: int, seeds: Sequence[int], max_params: int,
                 max_trial_seconds: float, cost_weight: float = 0.0, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.data, self.epochs, self.seeds = data, epochs, list(seeds)
        self.max_params, self.max_trial_seconds, self.cost_weight = max_params, max_trial_seconds, cost_weight

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        cfg = trial_config(trial.hyperparameters.values, self.epochs)
        d = self.data
        params = count_params(build_node_model(cfg, d.num_features, d.num_classes))
        if params > self.max_params:
            log.info("gnn_search: trial %s rejected: %d parameters > %d", trial.trial_id, params, self.max_params)
            raise kt.errors.FailedTrialError(f"{params} parameters > gnn_search.max_params {self.max_params}")
        started = time.time()
        deadline = started + self.max_trial_seconds
        val = []
        try:
            for s in self.seeds:
                val.append(fit_node_model(cfg, d, s, deadline=deadline)[1].val_accuracy)
        except TimeLimitExceeded as exc:
            log.info("gnn_search: trial %s rejected: over %.0f s (%s)", trial.trial_id, self.max_trial_seconds, exc)
            raise kt.errors.FailedTrialError(f"over gnn_search.max_trial_seconds: {exc}") from None
        accuracy = sum(val) / len(val)
        result = {OBJECTIVE: score(accuracy, params, self.max_params, self.cost_weight), "val_accuracy": accuracy,
                  "params": float(params), "train_seconds": time.time() - started}  # fmt: skip
        log.info("gnn_search: trial %s %s -> val %.4f, score %.4f (%d params, %.1f s)", trial.trial_id,
                 _short(cfg), accuracy, result[OBJECTIVE], params, result["train_seconds"])  # fmt: skip
        return result


def _short(cfg: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.items() if k != "epochs")


def score(val_accuracy: float, params: int, max_params: int, cost_weight: float) -> float:
    """What the search maximises: validation accuracy less the size term."""
    return val_accuracy - cost_weight * params / max_params


def auto_max_params(num_features: int, num_classes: int) -> int:
    """`max_params: auto`: 128 x (features + classes + 128), room for a 128-wide model of two or
    three layers on this data (on Cora, 200,704: about a 2-layer GAT with 8 heads of 16)."""
    return 128 * (num_features + num_classes + 128)


def project_name(p: Mapping[str, Any], seed: int, data_path: str | Path) -> str:
    """keras-tuner's project folder: a hash of what decides the trials (params, data, seed, and the
    code that builds and trains them), so a killed search resumes only the same search."""
    from pipelines.common import io
    from pipelines.common.params import params_hash
    from pipelines.graph import models, train

    code = {Path(m.__file__).name: io.sha256_path(m.__file__)[:16] for m in (models, train)} | {
        "search.py": io.sha256_path(__file__)[:16]}  # fmt: skip
    decides = {k: v for k, v in p.items() if k not in NOT_HASHED}
    return "gnn-search-" + params_hash(decides, {"seed": seed, "data": io.sha256_path(data_path)[:16]}, code)


class RandomOracle(TimeBudget, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(TimeBudget, kt.oracles.BayesianOptimizationOracle):
    pass


def make_oracle(kind: str, max_trials: int, space: Mapping[str, Any], seed: int, deadline: float | None = None) -> kt.Oracle:
    # The full space is declared up front: with it declared only inside run_trial, the first
    # trial would run keras-tuner's defaults instead of a sample.
    hp = define_space(kt.HyperParameters(), space)
    common = {"objective": kt.Objective(OBJECTIVE, "max"), "max_trials": max_trials, "hyperparameters": hp,
              "seed": seed, "max_consecutive_failed_trials": None}  # rejections by the limits are expected  # fmt: skip
    oracles = {"random": RandomOracle, "bayesian": BayesianOracle}
    if kind not in oracles:
        raise ValueError(f"unknown oracle {kind!r}")
    oracle = oracles[kind](**common)
    oracle.deadline = deadline
    return oracle


def run_search(data: NodeTensors, p: Mapping[str, Any], space: Mapping[str, Any], seed: int,
               directory: str | Path, project: str, max_params: int) -> list[dict[str, Any]]:  # fmt: skip
    """Run the search (resuming the project's trials when it was stopped); return every trial
    (id, status, config, metrics) in the order they ended."""
    deadline = time.time() + p["max_search_seconds"] if p["max_search_seconds"] else None
    tuner = GNNTuner(
        data, p["epochs"], [seed + i for i in range(p["seeds_per_trial"])], max_params, p["max_trial_seconds"],
        p["cost_weight"], oracle=make_oracle(p["oracle"], p["max_trials"], space, seed, deadline),
        directory=str(directory), project_name=project, overwrite=False,
    )  # fmt: skip
    done = sum(t.status in ("COMPLETED", "FAILED") for t in tuner.oracle.trials.values())
    if done:
        log.info("gnn_search: resuming %s: %d trials already done", Path(directory) / project, done)
    tuner.search(verbose=0)
    tuner.save()  # a rerun must not repeat the last trial
    trials = []
    for tid in tuner.oracle.end_order:
        t = tuner.oracle.trials[tid]
        metrics = {name: float(t.metrics.get_last_value(name)) for name in t.metrics.metrics
                   if t.metrics.get_last_value(name) is not None}  # fmt: skip
        trials.append({
            "trial_id": t.trial_id, "status": str(t.status),
            "config": trial_config(t.hyperparameters.values, p["epochs"]),
            "metrics": metrics,
            "message": (t.message or "").strip().splitlines()[-1] if t.message else None,
        })  # fmt: skip
    return trials


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the highest score (ties: fewer parameters), or None."""
    done = [t for t in trials if t["status"] == "COMPLETED" and OBJECTIVE in t["metrics"]]
    if not done:
        return None
    return max(done, key=lambda t: (t["metrics"][OBJECTIVE], -t["metrics"].get("params", 0)))
