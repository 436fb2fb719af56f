"""Fit the host's device profile to measured latencies, and check predictions against them.

Runtime and NumPy only, like the rest of pipelines/edge: a device can calibrate itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common.errors import ModelFileError
from pipelines.edge import analyze, bench, cost

log = logging.getLogger(__name__)


def timed_ops(files: Sequence[Path], **bench_kwargs: Any) -> list[dict[str, Any]]:
    """Analyse and benchmark each file: [{'name', 'ops', 'measured_ms'}, ...]."""
    rows = []
    for f in files:
        result = bench.benchmark(f, **bench_kwargs)
        rows.append({"name": f.stem, "ops": analyze.analyze(f)["ops"], "measured_ms": result["latency_p50_ms"]})
    return rows


def fit(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return cost.fit_profile([(r["ops"], r["measured_ms"]) for r in rows])


def check(rows: Sequence[Mapping[str, Any]], profile: Mapping[str, Any], tolerance: float = 0.2) -> dict[str, Any]:
    """Per-model predicted vs measured latency, and the share within `tolerance`."""
    per_model = {}
    for r in rows:
        predicted = cost.predict_ms(r["ops"], profile)
        per_model[r["name"]] = {
            "measured_ms": r["measured_ms"],
            "predicted_ms": round(predicted, 5),
            "error": round(cost.relative_error(predicted, r["measured_ms"]), 4),
        }
    errors = [abs(m["error"]) for m in per_model.values()]
    return {
        "models": per_model,
        "median_abs_error": round(float(sorted(errors)[len(errors) // 2]), 4) if errors else None,
        "within_tolerance": round(sum(e <= tolerance for e in errors) / len(errors), 4) if errors else None,
        "tolerance": tolerance,
    }


def calibrate(folder: str | Path, **bench_kwargs: Any) -> dict[str, Any]:
    """Measure every .tflite file in `folder`, fit the host profile, and report the fit."""
    files = sorted(Path(folder).glob("*.tflite"))
    if len(files) < 4:
        raise ModelFileError(f"{folder}: calibration needs at least 4 .tflite files, found {len(files)}")
    rows = timed_ops(files, **bench_kwargs)
    profile = fit(rows)
    log.info("calibrate: host profile %s", profile)
    return {"profile": profile, "fit": check(rows, profile)}
