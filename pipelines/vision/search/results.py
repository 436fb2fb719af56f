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
    "trial_id", "status", "rejected", "score", "accuracy", "latency_ms", "measured_latency_ms",
    "predicted_latency_ms", "size_bytes", "params", "macs", "memory_access_bytes", "pareto", "depth", "ds_widths",
    "kernel_size", "block", "expansion", "squeeze_excite", "stem_stride", "width_multiplier", "head", "train_seconds", "seconds",
)  # fmt: skip


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
