"""What a trial is judged on: its int8 file's costs (size, MACs, memory access, measured or predicted
latency), the hard limits of the `constrained` objective, and the score the oracle maximises."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common.errors import UserError

log = logging.getLogger("pipelines.vision.search")

OBJECTIVE = "score"


LIMITS = {"max_latency_ms": "latency_ms", "max_size_bytes": "size_bytes",
           "max_memory_access_bytes": "memory_access_bytes", "max_macs": "macs"}  # fmt: skip


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
    return files_costs([path], p, profile, bench_settings)[0]


def files_costs(paths: Sequence[Path], p: Mapping[str, Any], profile: Mapping[str, Any],
                bench_settings: Mapping[str, Any]) -> list[dict]:  # fmt: skip
    """`file_costs` of many files; `emulated` latency counts them all in one emulated process on the
    profile's core (instructions / (ipc x clock)), or falls back to `predicted` without the harness."""
    from pipelines.edge import analyze, bench, cost, emulate

    out = []
    for path in paths:
        a = analyze.analyze(path)
        t = a["totals"]
        costs = {k: int(t[k]) for k in ("size_bytes", "params", "macs", "memory_access_bytes", "peak_activation_bytes")}
        costs["predicted_latency_ms"] = round(cost.predict_ms(a["ops"], profile), 5)
        costs["measured_latency_ms"] = costs["emulated_latency_ms"] = None
        if p["latency_source"] == "measured":
            costs["measured_latency_ms"] = bench.benchmark(path, **bench_settings)["latency_p50_ms"]
        out.append(costs)
    source = p["latency_source"]
    if source == "emulated":
        try:
            counted = emulate.count(paths, profile["emulate"], invokes=2)
        except emulate.HarnessMissing as exc:
            log.warning("search: %s; latency_source emulated falls back to predicted", exc)
            source = "predicted"
        else:
            for costs, r in zip(out, counted, strict=True):
                if "error" in r:
                    raise UserError(f"{r['file']}: the emulated runtime cannot load it ({r['error']})")
                costs["arm_instructions"] = r["instructions"]
                costs["emulated_latency_ms"] = round(emulate.estimated_ms(r["instructions"], profile), 5)
    for costs in out:
        costs["latency_ms"] = costs[f"{source}_latency_ms"]
        costs["latency_from"] = source
    return out
