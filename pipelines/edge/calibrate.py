"""Fit the host's device profile to measured latencies, and each emulated ARM profile to its
instruction counts, and check predictions against them.

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


def fit(rows: Sequence[Mapping[str, Any]], start: Mapping[str, float] | None = None,
        fixed: Sequence[str] = ()) -> dict[str, float]:  # fmt: skip
    return cost.fit_profile([(r["ops"], r["measured_ms"]) for r in rows], start=start, fixed=fixed)


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


def calibrate_emulated(folder: str | Path, profiles: Mapping[str, Mapping[str, Any]], invokes: int = 3) -> dict[str, Any]:
    """Count every calibration file on each emulated profile's core (`emulate.profile_costs`) and
    fit that profile's roofline figures to the instruction-based latency, as `calibrate` fits the
    host's to measured time. An instruction count has no memory stalls in it, so the memory
    bandwidth keeps its documented figure (the roofline's memory side) and the compute figures
    are fitted, from the documented ones. Per profile: the fitted figures, the fit's check, and
    how the documented figures did."""
    from pipelines.edge import emulate

    files = sorted(Path(folder).glob("*.tflite"))
    counted = emulate.profile_costs(files, profiles, invokes=invokes)
    ops = {f.stem: analyze.analyze(f)["ops"] for f in files}
    fitted = {}
    for name, documented in emulate.emulated_profiles(profiles).items():
        rows = [{"name": stem, "ops": ops[stem], "measured_ms": counted["models"][stem][name]["estimated_latency_ms"]}
                for stem in ops]  # fmt: skip
        profile = fit(rows, start={k: documented[k] for k in cost.PROFILE_KEYS}, fixed=("bandwidth_gbs",))
        fitted[name] = {"profile": profile, "fit": check(rows, profile), "documented_fit": check(rows, documented)}
        log.info("calibrate: %s fitted to its emulated counts, median error %.1f %% (documented figures: %.1f %%)",
                 name, 100 * fitted[name]["fit"]["median_abs_error"], 100 * fitted[name]["documented_fit"]["median_abs_error"])  # fmt: skip
    return {"available": True, "profiles": fitted, "counts": counted}


def fitted_profiles(profiles: Mapping[str, Mapping[str, Any]], calibration: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The device profiles with each emulated one's roofline figures replaced by its fit (metrics/calibrate.json's
    `arm`), marked `fitted_to: emulated`; the others as documented in params, marked `fitted_to: null`."""
    fits = (calibration.get("arm") or {}).get("profiles", {})
    return {name: {**p, **fits[name]["profile"], "fitted_to": "emulated"} if name in fits else {**p, "fitted_to": None}
            for name, p in profiles.items()}  # fmt: skip
