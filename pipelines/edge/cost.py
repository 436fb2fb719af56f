"""Predicted latency of a .tflite model on a device profile: a roofline per operator.

Each operator takes as long as the slower of its compute (multiply-accumulates at the
device's peak rate for the op's dtype) and its memory traffic (memory-access cost at the
device's bandwidth), plus a fixed per-operator overhead (dispatch, cache misses on small
tensors). GEMM-shaped operators (convolutions, fully-connected) reach the peak; depthwise
convolutions, pooling and element-wise operators reuse little data per load and reach only
`vector_efficiency` of it. A GEMM whose reduction depth (the products summed per output: kh * kw *
cin for a convolution, the input units of a dense layer) is below the profile's `min_depth_<dtype>`
is charged as if it were that deep: kernels are tuned for deep sums, and on x86 XNNPACK an int8
3x3 convolution from one input channel (depth 9) ran at a sixth of the int8 peak. The model's
latency is the sum over operators, as the interpreter runs them one after another. NumPy only:
this runs on the device side of the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PROFILE_KEYS = ("peak_gmacs_fp32", "peak_gmacs_int8", "vector_efficiency", "bandwidth_gbs", "op_overhead_us")
DEPTH_KEYS = ("min_depth_fp32", "min_depth_int8")  # optional; absent or 1: no shallow-GEMM penalty
GEMM_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"})


def reduction_depth(op: Mapping[str, Any]) -> float | None:
    """Products summed per output element (MACs / output elements) of a GEMM-shaped operator,
    None when the operator is not one or its output shape is unknown."""
    if op["op"] not in GEMM_OPS or not op.get("output_shape"):
        return None
    outputs = 1
    for d in op["output_shape"]:
        outputs *= max(int(d), 1)
    return op["macs"] / outputs


def op_seconds(op: Mapping[str, Any], profile: Mapping[str, Any]) -> tuple[float, str]:
    """(seconds, 'compute' | 'memory' | 'overhead') for one analysed operator on one profile."""
    int8 = op.get("dtype") in ("int8", "uint8")
    peak = profile["peak_gmacs_int8"] if int8 else profile["peak_gmacs_fp32"]
    if op["op"] not in GEMM_OPS:
        peak *= profile["vector_efficiency"]
    macs = op["macs"]
    depth = reduction_depth(op)
    min_depth = profile.get("min_depth_int8" if int8 else "min_depth_fp32", 1.0)
    if depth and depth < min_depth:
        macs *= min_depth / depth
    compute = macs / (peak * 1e9)
    memory = op["memory_access_bytes"] / (profile["bandwidth_gbs"] * 1e9)
    overhead = profile["op_overhead_us"] * 1e-6
    bound = "compute" if compute >= memory else "memory"
    if overhead > max(compute, memory):
        bound = "overhead"
    return max(compute, memory) + overhead, bound


def predict_ms(ops: Sequence[Mapping[str, Any]], profile: Mapping[str, Any]) -> float:
    """Predicted single-inference latency in milliseconds."""
    return sum(op_seconds(op, profile)[0] for op in ops) * 1e3


def breakdown(ops: Sequence[Mapping[str, Any]], profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-operator predicted time and what bounds it, for the report."""
    rows = []
    for op in ops:
        seconds, bound = op_seconds(op, profile)
        rows.append({"index": op["index"], "op": op["op"], "predicted_ms": seconds * 1e3, "bound": bound})
    return rows


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured: +0.2 means the prediction is 20 % too slow."""
    return (predicted - measured) / measured


def fit_profile(
    samples: Sequence[tuple[Sequence[Mapping[str, Any]], float]],
    start: Mapping[str, float] | None = None,
    iterations: int = 60,
    fixed: Sequence[str] = (),
) -> dict[str, float]:
    """Fit a profile's seven figures (PROFILE_KEYS and DEPTH_KEYS) to measured latencies
    [(ops, measured_ms), ...].

    Minimises the mean absolute log error, |log(predicted / measured)|, by coordinate descent
    in log space: each figure in turn is scaled by the best of a shrinking set of factors. The
    absolute error makes this a median-type fit: a few models the roofline cannot describe do
    not pull every other prediction off, as they did with the squared error. The depth floors
    start at 64, where a 3x3 convolution from one input channel (depth 9) feels them: from 1
    the first steps would change nothing and the search would never move them. The roofline's
    max() makes the fit non-linear; this search is simple, bounded and needs no SciPy on the
    device. Keys in `fixed` keep their `start` value.
    """
    import math

    p = {"peak_gmacs_fp32": 10.0, "peak_gmacs_int8": 10.0, "vector_efficiency": 0.5, "bandwidth_gbs": 10.0,
         "op_overhead_us": 1.0, "min_depth_fp32": 64.0, "min_depth_int8": 64.0, **(start or {})}  # fmt: skip

    def loss(q: Mapping[str, float]) -> float:
        return sum(abs(math.log(predict_ms(ops, q) / measured)) for ops, measured in samples) / len(samples)

    best = loss(p)
    step = 4.0
    for _ in range(iterations):
        improved = False
        for key in [k for k in PROFILE_KEYS + DEPTH_KEYS if k not in fixed]:
            for factor in (step, 1 / step):
                trial = {**p, key: max(p[key] * factor, 1e-6)}
                if key == "vector_efficiency":
                    trial[key] = min(trial[key], 1.0)
                elif key in DEPTH_KEYS:
                    trial[key] = max(trial[key], 1.0)
                value = loss(trial)
                if value < best - 1e-12:
                    p, best, improved = trial, value, True
        if not improved:
            step = math.sqrt(step)
            if step < 1.001:
                break
    return {k: float(f"{v:.6g}") for k, v in p.items()}
