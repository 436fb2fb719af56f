"""The trials read back: every trial's record, the best one, trials.csv rows and metrics/search.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.vision.search.objective import LIMITS
from pipelines.vision.search.space import arch_from_values
from pipelines.vision.search.tuner import RECORD

if TYPE_CHECKING:
    import keras_tuner as kt

CSV_COLUMNS = (
    "trial_id", "status", "rejected", "score", "accuracy", "proxy", "latency_ms", "latency_from", "measured_latency_ms",
    "predicted_latency_ms", "emulated_latency_ms", "arm_instructions", "size_bytes", "params", "macs", "memory_access_bytes", "pareto", "depth", "ds_widths",
    "kernel_size", "block", "expansion", "squeeze_excite", "stem_stride", "width_multiplier", "head", "train_seconds", "seconds",
)  # fmt: skip


def csv_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A trial as a row of trials.csv."""
    arch = r["arch"]
    return {**{k: r.get(k) for k in CSV_COLUMNS}, **arch, "depth": len(arch["ds_widths"]),
            "ds_widths": "-".join(map(str, arch["ds_widths"])), "accuracy": r.get("val_accuracy")}  # fmt: skip


SCREEN_COLUMNS = (
    "values_hash", "screening", "proxy", "keras_params", "compute_macs", "latency_ms", "size_bytes", "macs",
    "memory_access_bytes", "reason", "depth", "ds_widths", "kernel_size", "block", "expansion", "squeeze_excite",
    "stem_stride", "width_multiplier", "head",
)  # fmt: skip


# The hypervolume's reference point: (error, latency / the default student's, size / the default student's).
HV_REFERENCE = (1.0, 2.0, 2.0)


def screen_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A screened candidate as a row of screening.csv."""
    arch = arch_from_values(r["values"])
    return {**{k: r.get(k) for k in SCREEN_COLUMNS}, **arch, "depth": len(arch["ds_widths"]),
            "ds_widths": "-".join(map(str, arch["ds_widths"]))}  # fmt: skip


def front_points(rows: Sequence[Mapping[str, Any]], default: Mapping[str, Any]) -> list[tuple[float, float, float]]:
    """Completed trials as (error, latency, size), latency and size relative to the default student's."""
    return [(1.0 - r["val_accuracy"], r["latency_ms"] / default["latency_ms"], r["size_bytes"] / default["size_bytes"])
            for r in rows if r["status"] == "completed"]  # fmt: skip


def hypervolume(rows: Sequence[Mapping[str, Any]], default: Mapping[str, Any]) -> float:
    """The hypervolume of the completed trials' (error, latency, size) up to `HV_REFERENCE`."""
    from pipelines.common.pareto import hypervolume as volume

    return round(volume(front_points(rows, default), HV_REFERENCE), 6)


def front_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A completed trial's figures as the front lists them."""
    return {"trial_id": r["trial_id"], "val_accuracy": r["val_accuracy"], "latency_ms": r["latency_ms"],
            "size_bytes": r["size_bytes"], "macs": r.get("macs"), "proxy": r.get("proxy"), "arch": dict(r["arch"])}  # fmt: skip


def proxy_correlation(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Spearman's rank correlation of the untrained proxy with the trained validation accuracy."""
    from pipelines.common.stats import spearman

    done = [r for r in rows if r["status"] == "completed" and r.get("proxy") is not None]
    rho = spearman([r["proxy"] for r in done], [r["val_accuracy"] for r in done])
    return {"proxy": "naswot", "trials": len(done), "spearman_val_accuracy": None if rho is None else round(rho, 4)}


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
            deduplicated: Mapping[str, int], done_before: int, search_seconds: float, project: Path,
            default: Mapping[str, Any], screening: Sequence[Mapping[str, Any]] = (), over_limits: int = 0,
            default_hash: str | None = None) -> dict[str, Any]:  # fmt: skip
    """metrics/search.json: how many trials ran and how they ended, the best one, the front it was
    chosen from (with figures) and the default student's own trial (`default_hash`), when it ran."""
    top = best(rows, p["choose"])
    by_id = {r["trial_id"]: r for r in rows}
    default_trial = next((r["trial_id"] for r in rows if default_hash and r.get("values_hash") == default_hash), None)
    return {
        "oracle": p["oracle"],
        "objective": p["objective"],
        "latency_source": p["latency_source"],
        "device": "host" if p["latency_source"] == "measured" else p["device"],
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
        "choose": p["choose"],
        "best_trial": top["trial_id"],
        "best_score": top["score"],
        "best_val_accuracy": top["val_accuracy"],
        "best_latency_ms": top["latency_ms"],
        "best_size_bytes": top["size_bytes"],
        "best_macs": top["macs"],
        "best_arch": dict(chosen),
        "pareto_front": front,
        "front": [front_row(by_id[t]) for t in sorted(front, key=lambda t: by_id[t]["latency_ms"])],
        "default_trial": default_trial,
        "default_trial_figures": front_row(by_id[default_trial]) if default_trial in by_id and
                                 by_id[default_trial]["status"] == "completed" else None,
        "hypervolume": hypervolume(rows, default),
        "hypervolume_reference": {"error": HV_REFERENCE[0], "latency_ms": HV_REFERENCE[1] * default["latency_ms"],
                                  "size_bytes": HV_REFERENCE[2] * default["size_bytes"]},
        "default_student": {k: default[k] for k in ("latency_ms", "size_bytes", "macs", "latency_from")},
        "proxy_correlation": proxy_correlation(rows),
        "screened": len(screening),
        "screening": {s: sum(r["screening"] == s for r in screening)
                      for s in ("shortlisted", "not shortlisted", "over limit", "not costed")},
        "skipped_over_limits": over_limits,
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


def best(rows: Sequence[Mapping[str, Any]], choose: str = "score") -> Mapping[str, Any] | None:
    """The chosen completed trial, or None. `score`: the highest objective score (ties: lower
    latency, then fewer bytes). `proxy`: the highest NASWOT score (ties: the higher score, then
    lower latency), since a short trial's accuracy may not rank architectures the way full
    training does while the proxy can (docs/experiments/search.md)."""
    done = [r for r in rows if r["status"] == "completed"]
    if not done:
        return None
    if choose == "proxy":
        return max(done, key=lambda r: (r.get("proxy") if r.get("proxy") is not None else float("-inf"), r["score"],
                                        -r["latency_ms"]))  # fmt: skip
    return max(done, key=lambda r: (r["score"], -r["latency_ms"], -r["size_bytes"]))
