"""The budget: the compression chain's accuracy budget (points a model may lose against the
teacher), checked after each step, and the final model's bounds from params.yaml's `budget`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def check(name: str, accuracy: float, teacher_accuracy: float, max_accuracy_drop: float) -> dict:
    """The drop of `accuracy` below the teacher's, in points, and whether it is within the budget."""
    drop = round((teacher_accuracy - accuracy) * 100, 3)
    within = drop <= max_accuracy_drop + 1e-9
    (log.info if within else log.warning)(
        "budget: %s %.4f vs teacher %.4f: %+.2f points (budget %.2f) %s",
        name, accuracy, teacher_accuracy, -drop, max_accuracy_drop, "ok" if within else "BROKEN",
    )  # fmt: skip
    return {
        "model": name,
        "accuracy": accuracy,
        "teacher_accuracy": teacher_accuracy,
        "drop_points": drop,
        "max_accuracy_drop": max_accuracy_drop,
        "within": within,
    }


# What `budget` in params.yaml bounds: report field, comparison, budget key.
BUDGET = (
    ("accuracy", ">=", "min_accuracy"),
    ("latency_p50_ms", "<=", "max_latency_p50_ms"),
    ("size_bytes", "<=", "max_size_bytes"),
    ("teacher_drop_points", "<=", "max_accuracy_drop"),
)


def check_budget(report: Mapping[str, Any], budget: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The final model's figures against every bound of the budget: one entry per bound, with `ok`.

    The accuracy drop is the final model's, in points, below the report's reference model (the
    teacher). A figure the report lacks (null) breaks its bound: a budget that cannot be checked
    is not met.
    """
    final = dict(next(r for r in report["models"] if r["name"] == report["final"]))
    reference = (report.get("selection") or {}).get("reference", "teacher_fp32")
    ref = next((r for r in report["models"] if r["name"] == reference), None)
    if ref and ref.get("accuracy") is not None and final.get("accuracy") is not None:
        final["teacher_drop_points"] = round((ref["accuracy"] - final["accuracy"]) * 100, 3)
    checks = []
    for field, op, key in BUDGET:
        value, limit = final.get(field), budget[key]
        ok = value is not None and (value >= limit if op == ">=" else value <= limit + 1e-9)
        checks.append({"field": field, "value": value, "op": op, "limit": limit, "ok": ok})
    return checks
