"""The pipeline report's content: one row per model variant, the recommended model, the Pareto
front and the compression chain's steps. Its plots are in `plots`, its text forms in `render`.

`metrics/report.json` is a contract other tools read: keep the field names in `FIELDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common.errors import UserError

log = logging.getLogger(__name__)

FIELDS = (
    "name", "file", "dtype", "accuracy", "size_bytes", "params", "macs",
    "memory_access_bytes", "peak_activation_bytes", "threads", "init_ms",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
)  # fmt: skip


# Beyond the contract: the spread of the measurement and the cost model's view.
EXTRA_FIELDS = (
    "weight_bytes", "latency_p50_all_ms", "latency_mean_ms", "latency_std_ms", "runs", "peak_memory_bytes",
    "predicted_latency_ms", "prediction_error_host", "gzip_bytes", "teacher_drop_points", "within_budget",
    "integer_only", "arm_instructions", "arm_latency_ms", "device_latency_p50_ms", "target_latency_ms",
)  # fmt: skip

# The compression chain's steps, in order, as the waterfall shows them (the last is the chain's pick).
CHAIN_STEPS = (
    ("teacher", "teacher_fp32"), ("baseline student", "student_baseline_fp32"),
    ("distilled", "student_kd_fp32"), ("pruned", "student_pruned_fp32"),
)  # fmt: skip


def model_rows(quantized: Mapping[str, Mapping], measured: Mapping[str, Mapping]) -> list[dict[str, Any]]:
    """Join conversion results (accuracy, size) with measurements and analysis by variant name.

    `params` comes from the .tflite file when it was analysed (what ships, BatchNorm folded).
    """
    rows = []
    for name, q in quantized.items():
        m = measured.get(name, {})
        row = {f: None for f in (*FIELDS, *EXTRA_FIELDS)}
        row.update({k: q[k] for k in (*FIELDS, *EXTRA_FIELDS) if k in q})
        row.update({k: m[k] for k in (*FIELDS, *EXTRA_FIELDS) if k in m and k not in ("file", "size_bytes")})
        row["name"] = name
        rows.append(row)
    return rows


def choose_final(
    rows: list[dict],
    max_accuracy_drop: float,
    rank_by: str,
    reference: str | None = None,
    dtypes: Sequence[str] | None = None,
    tie_tolerance: float = 0.0,
    integer_only: bool = False,
) -> str:
    """The model ranked best by `rank_by` among those within `max_accuracy_drop` points of the
    `reference` model (e.g. the teacher), or of the most accurate model when there is none, and
    of one of `dtypes` when given (e.g. only int8 and mixed files), and only files whose input,
    output and every op are integers when `integer_only` (an int8 accelerator's files).

    Models within `tie_tolerance` (relative) of the best figure tie, as two p50s closer than the
    benchmark's run-to-run spread do: among them the most accurate wins. Remaining ties are broken
    by the other of size and p50 latency, then by name. When no model qualifies, the reference
    (or the most accurate model) is the answer.
    """
    ref = next((r for r in rows if r["name"] == reference), None)
    best = ref["accuracy"] if ref else max(r["accuracy"] for r in rows)
    ok = [r for r in rows if r["accuracy"] >= best - max_accuracy_drop / 100 - 1e-12
          and (not dtypes or r.get("dtype") in dtypes) and (not integer_only or r.get("integer_only"))]  # fmt: skip
    ok = ok or [ref or max(rows, key=lambda r: r["accuracy"])]
    other = "latency_p50_ms" if rank_by == "size_bytes" else "size_bytes"
    best_rank = min(_or_inf(r[rank_by]) for r in ok)
    tied = [r for r in ok if _or_inf(r[rank_by]) <= best_rank * (1 + tie_tolerance)]

    def key(r: dict) -> tuple:
        return (-r["accuracy"] if tie_tolerance else 0, _or_inf(r[rank_by]), _or_inf(r[other]), r["name"])

    return min(tied, key=key)["name"]


def _or_inf(v: Any) -> float:
    return float("inf") if v is None else float(v)


def pareto_front(rows: list[dict], cost: str | tuple[str, ...] = "latency_p50_ms") -> list[str]:
    """Names of models no other model beats on accuracy (higher) and every cost (lower) at once.

    `cost` is one field or a tuple of fields (e.g. latency and size: a three-way front).
    """
    from pipelines.common.pareto import fronts

    costs = (cost,) if isinstance(cost, str) else tuple(cost)
    known = [r for r in rows if all(r[c] is not None for c in costs)]
    if not known:
        return []
    first = fronts([(-r["accuracy"], *(r[c] for c in costs)) for r in known])[0]
    return [known[i]["name"] for i in first]


def search_section(search: Mapping[str, Any]) -> dict[str, Any]:
    """What the report says of the architecture search: the chosen trial, the default student's own
    trial, and the front the choice was made from, with its hypervolume (metrics/search.json)."""
    keys = ("best_trial", "default_trial", "default_trial_figures", "front", "hypervolume", "objective", "device",
            "latency_source", "proxy_correlation", "trials", "screened", "search_seconds")  # fmt: skip
    out = {k: search.get(k) for k in keys}
    out["chosen_default"] = search.get("best_trial") == search.get("default_trial")
    return out


def waterfall_steps(rows: list[dict], last: str | None) -> list[dict]:
    """The chain's steps present in `rows` (teacher, baseline, distilled, pruned, then `last`, the
    quantized model the chain settled on), each with accuracy, size and p50 latency."""
    by_name = {r["name"]: r for r in rows}
    steps = [(label, name) for label, name in CHAIN_STEPS if name in by_name]
    if last in by_name:
        steps.append((f"quantized ({by_name[last]['dtype']})", last))
    return [{"step": label, **{k: by_name[name][k] for k in ("name", "accuracy", "size_bytes", "latency_p50_ms")}}
            for label, name in steps]  # fmt: skip


REFERENCE = "teacher_fp32"  # the accuracy budget is counted from the teacher's fp32 file
DTYPES = ("float32", "dynamic", "float16", "int8", "mixed")  # the quantize stage's file kinds


def target_latency(rows: list[dict], target: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]],
                   arm_cost: Mapping[str, Any] | None, device_bench: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Fill each row's `arm_instructions`, `arm_latency_ms` (per emulated profile),
    `device_latency_p50_ms` and `target_latency_ms`, the target device's latency from the best
    evidence there is: on `host`, the measured p50; on USER@HOST, the p50 measured there
    (device_bench); on a device profile, its emulated ARM count (instructions / (ipc x clock)),
    else its roofline prediction. Returns what decided: {device, evidence, detail, int8_only}."""
    device = target["device"]
    arm = arm_cost or {}
    on_device = (device_bench or {}).get("models", {})
    for r in rows:
        r["device_latency_p50_ms"] = (on_device.get(r["name"]) or {}).get("latency_p50_ms")
    counted = arm.get("models", {})
    for r in rows:
        per_profile = counted.get(r["name"], {})
        r["arm_instructions"] = {k: v["instructions"] for k, v in per_profile.items()} or None
        r["arm_latency_ms"] = {k: v["estimated_latency_ms"] for k, v in per_profile.items()} or None
    profile = profiles.get(device, {})
    int8_only = bool(target["int8_only"] or profile.get("int8_only"))
    if device == "host":
        evidence, detail = "measured", "p50 measured on this host (benchmark stage)"
        for r in rows:
            r["target_latency_ms"] = r["latency_p50_ms"]
    elif "@" in device:
        if not all(r["device_latency_p50_ms"] is not None for r in rows):
            raise UserError(f"target.device {device}: device_bench has no measurement of every file; "
                            "run dvc repro device_bench")  # fmt: skip
        cpu = ((device_bench or {}).get("host") or {}).get("cpu_model", "?")
        evidence, detail = "measured on the device", f"p50 measured on {device} ({cpu}) over SSH (device_bench)"
        for r in rows:
            r["target_latency_ms"] = r["device_latency_p50_ms"]
    elif all(r["arm_latency_ms"] and device in r["arm_latency_ms"] for r in rows):
        core = arm["profiles"][device]
        evidence = "emulated"
        detail = (f"aarch64 instructions per inference on {core['core']} under QEMU (arm_cost) / "
                  f"({core['ipc']} instructions per cycle x {core['clock_ghz']} GHz)")  # fmt: skip
        for r in rows:
            r["target_latency_ms"] = r["arm_latency_ms"][device]
    else:
        why = arm.get("reason") or f"arm_cost has no count for {device}"
        evidence, detail = "roofline", f"the roofline prediction for {device} (pipelines/edge/cost.py); {why}"
        for r in rows:
            r["target_latency_ms"] = (r["predicted_latency_ms"] or {}).get(device)
    return {"device": device, "evidence": evidence, "detail": detail, "int8_only": int8_only}


def arm_prediction(rows: Sequence[Mapping[str, Any]], tolerance: float = 0.2) -> dict[str, Any]:
    """Per emulated profile: how well the roofline prediction matches the emulated estimate over
    the report's files (the share within `tolerance`, the largest error)."""
    out = {}
    profiles = sorted({p for r in rows for p in (r.get("arm_latency_ms") or {})})
    for p in profiles:
        errors = {r["name"]: (r["predicted_latency_ms"][p] - r["arm_latency_ms"][p]) / r["arm_latency_ms"][p]
                  for r in rows if (r.get("arm_latency_ms") or {}).get(p) and (r.get("predicted_latency_ms") or {}).get(p)}  # fmt: skip
        if errors:
            out[p] = {"within_20pct": round(sum(abs(e) <= tolerance for e in errors.values()) / len(errors), 4),
                      "max_abs_error": round(max(abs(e) for e in errors.values()), 4),
                      "errors": {k: round(v, 4) for k, v in errors.items()}}  # fmt: skip
    return out


def vision_report(quantized: Mapping[str, Any], measured: Mapping[str, Any], calibration: Mapping[str, Any],
                  p: Mapping[str, Any], max_drop: float, dtypes: Sequence[str], git_commit: str,
                  target: Mapping[str, Any] | None = None, arm_cost: Mapping[str, Any] | None = None,
                  device_bench: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """metrics/report.json of the vision pipeline (without its compression chain): every model's
    row, the final model chosen for the target device, the Pareto front and the cost model's view."""
    rows = model_rows(quantized["models"], measured["models"])
    chosen_for = target_latency(rows, target or {"device": "host", "int8_only": False}, measured["profiles"], arm_cost,
                                device_bench)  # fmt: skip
    final = choose_final(rows, max_drop, p["rank_by"], reference=REFERENCE, dtypes=dtypes,
                         tie_tolerance=p["tie_tolerance"], integer_only=chosen_for["int8_only"])  # fmt: skip
    return {
        "pipeline": "vision",
        "git_commit": git_commit,
        "final": final,
        "selection": {"max_accuracy_drop": max_drop, "reference": REFERENCE, "rank_by": p["rank_by"],
                      "dtypes": list(dtypes) or None, "tie_tolerance": p["tie_tolerance"], "target": chosen_for},  # fmt: skip
        "pareto_front": pareto_front(rows, "target_latency_ms" if p["rank_by"] == "target_latency_ms" else "latency_p50_ms"),
        "host": measured.get("host"),
        "cost_model": {
            "profiles": measured["profiles"],
            "calibration_fit": {k: calibration["fit"][k] for k in ("median_abs_error", "within_tolerance", "tolerance")},
            "host_prediction": measured["host_prediction"],
            "arm_prediction": arm_prediction(rows),
        },
        "models": rows,
    }


# The figures attached to each model in MLflow (its logged model's metrics).
MODEL_FIGURES = ("accuracy", "size_bytes", "params", "macs", "memory_access_bytes", "peak_activation_bytes",
                 "latency_p50_ms", "latency_p90_ms", "target_latency_ms", "arm_instructions", "arm_latency_ms",
                 "device_latency_p50_ms", "predicted_latency_ms")  # fmt: skip


def model_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    return {r["name"]: {f: r[f] for f in MODEL_FIGURES if isinstance(r.get(f), (int, float)) and not isinstance(r.get(f), bool)}
            for r in rows}  # fmt: skip


def registration(settings: Mapping[str, Any], final: str, alias_it: bool, why: str) -> dict[str, Any] | None:
    """What the summary registers: the final model under `registered_model`, with `alias` when `alias_it`."""
    if not settings["registered_model"]:
        return None
    return {"name": settings["registered_model"], "model": final, "alias": settings["alias"] if alias_it else None,
            "tags": {"edgesmith.verdict": why}, "description": f"{final}: {why}"}  # fmt: skip


# What `dvc metrics show` and `dvc exp show` list (metrics/summary.json, graph_summary.json): the
# final model's figures, and a few of every model's, keyed by name (DVC's tables drop lists).
DVC_FIGURES = ("accuracy", "size_bytes", "latency_p50_ms", "target_latency_ms", "memory_access_bytes", "teacher_drop_points")
DVC_MODEL_FIGURES = ("accuracy", "size_bytes", "latency_p50_ms", "target_latency_ms")


def dvc_metrics(rows: Sequence[Mapping[str, Any]], final: str, **extra: Any) -> dict[str, Any]:
    """The pipeline's DVC metrics file: nested dicts of figures, the layout DVC's tables read."""
    final_row = next(r for r in rows if r["name"] == final)
    return {
        "final_model": {"name": final, **{f: final_row[f] for f in DVC_FIGURES if final_row.get(f) is not None}},
        **extra,
        "by_model": {r["name"]: {f: r[f] for f in DVC_MODEL_FIGURES if r.get(f) is not None} for r in rows},
    }


def read_report(path: str | Path) -> dict[str, Any]:
    """A report file (metrics/report.json or graph_report.json), checked: anything broken is one
    UserError line (exit 2), never a traceback nor the exit 1 CI reads as "over budget"."""
    import json

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no report yet; run `make repro` (or `dvc repro`) first")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a report: invalid JSON ({exc}); run the report stage again") from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) and "name" in m for m in models):
        raise UserError(f"{path}: not a report: no 'models' list of named models; run the report stage again")
    if doc.get("final") not in {m["name"] for m in models}:
        raise UserError(f"{path}: not a report: its 'final' model {doc.get('final')!r} is not among its models; "
                        "run the report stage again")  # fmt: skip
    return doc


def chain_summary(quantized: Mapping[str, Any], distill: Mapping[str, Any] | None,
                  prune: Mapping[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """What each step of the compression chain gained and cost, from the stages' own metrics."""
    chain: dict[str, Any] = {}
    if distill:
        keys = ("seeds", "kd_gain_points", "baseline_accuracy", "kd_accuracy", "student_params", "loss", "budget")
        chain["distill"] = {k: distill[k] for k in keys}
        if "chain" in distill:  # which student the chain went on with, and why
            chain["student"] = distill["chain"]
    if prune:
        keys = ("sparsity", "target_sparsity", "schedule", "m_by_n", "int8", "gzip_ratio", "latency_speedup", "budget")
        chain["prune"] = {k: prune[k] for k in keys}
    if "chain" in quantized:
        q = quantized["chain"]
        chain["quantize"] = q
        chain["quantized"] = q["final"] or q["attempts"][-1]["model"]
    return chain
