"""One .tflite file measured and modelled side by side, as the benchmark stages report it.

The benchmark (`bench.benchmark`), the flatbuffer analysis's totals (`analyze.analyze`) and the
roofline's predicted latency on every device profile (`cost.predict_ms`). When the profiles
include the fitted `host`, the host prediction is checked against the measured p50 and the
per-operator breakdown on the host is added. TFLite runtime and NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.edge import analyze, bench, cost

TOTALS = ("macs", "params", "weight_bytes", "memory_access_bytes", "peak_activation_bytes", "integer_only")
OP_FIELDS = ("index", "op", "dtype", "macs", "memory_access_bytes")


def measured_and_modelled(path: str | Path, profiles: Mapping[str, Mapping[str, Any]], seed: int = 0, **bench_kwargs: Any) -> dict:
    """`bench.benchmark`'s result (without the host fingerprint, recorded once per stage) plus the
    analysis totals, `predicted_latency_ms` per profile and, with a `host` profile,
    `prediction_error_host` and `ops` (per operator: MACs, memory-access cost, predicted ms, bound)."""
    r = bench.benchmark(path, seed=seed, **bench_kwargs)
    r.pop("host")
    a = analyze.analyze(path)
    r.update({k: a["totals"][k] for k in TOTALS})
    predicted = {name: round(cost.predict_ms(a["ops"], prof), 5) for name, prof in profiles.items()}
    r["predicted_latency_ms"] = predicted
    if "host" in profiles:
        r["prediction_error_host"] = round(cost.relative_error(predicted["host"], r["latency_p50_ms"]), 4)
        r["ops"] = [
            {**{k: op[k] for k in OP_FIELDS}, **b}
            for op, b in zip(a["ops"], cost.breakdown(a["ops"], profiles["host"]), strict=True)
        ]
    return r
