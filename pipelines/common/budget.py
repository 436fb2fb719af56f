"""The compression chain's one accuracy budget: points a model may lose against the teacher."""

from __future__ import annotations

import logging

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
