"""Latency of a .tflite file in the TFLite runtime, measured the way `benchmark_model` does.

Fixed thread count, CPU affinity pinned, warm-up runs, then timed `invoke()` calls until
both a minimum count and a minimum time are reached. Only `invoke()` is timed; inputs are
set once, generated to match each input's dtype and quantization.

The timed phase is split into `windows` consecutive windows of equal budget: each window
runs until it has made ceil(min_runs / windows) calls and spent min_seconds / windows, so
the whole phase costs what one window of min_runs and min_seconds would. What the figures
mean:

- `latency_p50_ms`: the median of the quietest window, i.e. the lowest of the per-window
  medians (`latency_p50_windows_ms`, all recorded). Other processes on a shared machine only
  ever add time to an invoke, so the quietest window is the closest to the model's own cost;
  this is how `timeit` reports the best of several repeats, applied to medians so that one
  lucky call cannot set the figure. With `windows` = 1 it is the plain median of all runs.
- `latency_p50_all_ms`, `latency_p90_ms`, `latency_p99_ms`, `latency_mean_ms`,
  `latency_std_ms`, `latency_min_ms`: over all timed runs of all windows, load included
  (the tail a user of this machine would see).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.errors import UserError
from pipelines.edge import host, runtime

log = logging.getLogger(__name__)


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[list[int] | None]:
    """Pin this process to `cpus` for the block; yields the affinity in force (None: not pinned)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return
    before = os.sched_getaffinity(0)
    allowed = cpus & before or before
    os.sched_setaffinity(0, allowed)
    try:
        yield sorted(allowed)
    finally:
        os.sched_setaffinity(0, before)


def synthetic_inputs(details: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """Random inputs of each input tensor's shape and dtype, spanning its real value range."""
    out = []
    for d in details:
        shape = [max(int(s), 1) for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype))
        elif dtype == np.bool_:
            out.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            out.append(rng.random(shape).astype(dtype))
    return out


def percentile(samples_ms: np.ndarray, q: float) -> float:
    return float(np.percentile(samples_ms, q))


SETTINGS = ("threads", "warmup_runs", "min_runs", "min_seconds", "pin_cpu", "windows")


def settings(params: dict) -> dict:
    """The keyword arguments of `benchmark` taken from a params section (the `benchmark` section)."""
    return {k: params[k] for k in SETTINGS}


def benchmark(
    path: str | Path,
    threads: int = 1,
    warmup_runs: int = 10,
    min_runs: int = 100,
    min_seconds: float = 1.0,
    pin_cpu: int | None = 0,
    windows: int = 5,
    seed: int = 0,
) -> dict:
    """Measure one model. Returns sizes, init time, latency percentiles and memory growth.

    `latency_p50_ms` is the lowest per-window median of `windows` equal windows (see the module
    docstring); the other percentiles are over all runs.
    """
    path = runtime.check_tflite(path)
    if windows < 1:
        raise UserError(f"windows must be >= 1, got {windows}")
    cpus = None if pin_cpu is None else set(range(pin_cpu, pin_cpu + threads))
    window_runs = -(-min_runs // windows)
    window_seconds = min_seconds / windows
    with pinned(cpus) as affinity:
        rss_before = host.rss_bytes()
        peak_reset = host.reset_peak_rss()
        t0 = time.perf_counter()
        interpreter = runtime.load(path, threads=threads)
        init_ms = (time.perf_counter() - t0) * 1e3
        _ready(interpreter, seed, warmup_runs)
        peak = host.peak_rss_bytes() if peak_reset else None  # load + warm-up, as on a device
        per_window = [_timed_window(interpreter, window_runs, window_seconds) for _ in range(windows)]
    result = {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "threads": threads,
        "cpu_affinity": affinity,
        "warmup_runs": warmup_runs,
        "windows": windows,
        "init_ms": round(init_ms, 4),
        **latency_stats(per_window),
        "peak_memory_bytes": None if peak is None or rss_before is None else max(peak - rss_before, 0),
        "host": host.fingerprint(),
    }
    log.info(
        "bench %s: p50 %.4f ms (quietest of %d windows; %.4f ms over all runs), p90 %.4f ms, p99 %.4f ms, "
        "%d runs, %d thread(s)",
        path.name, result["latency_p50_ms"], windows, result["latency_p50_all_ms"], result["latency_p90_ms"],
        result["latency_p99_ms"], result["runs"], threads,
    )  # fmt: skip
    return result


def latency_stats(per_window: Sequence[np.ndarray]) -> dict[str, Any]:
    """The one definition of the latency figures, for both pipelines: timed calls in equal windows
    (benchmark's windows, or the graph benchmark's rounds); `latency_p50_ms` is the lowest
    per-window median (the quietest window), the other figures are over all calls."""
    ms = np.concatenate(per_window)
    window_p50 = [percentile(w, 50) for w in per_window]
    return {
        "runs": len(ms),
        "latency_p50_ms": round(min(window_p50), 5),
        "latency_p50_windows_ms": [round(v, 5) for v in window_p50],
        "latency_p50_all_ms": round(percentile(ms, 50), 5),
        "latency_p90_ms": round(percentile(ms, 90), 5),
        "latency_p99_ms": round(percentile(ms, 99), 5),
        "latency_mean_ms": round(float(ms.mean()), 5),
        "latency_std_ms": round(float(ms.std()), 5),
        "latency_min_ms": round(float(ms.min()), 5),
    }


def _timed_window(interpreter, min_runs: int, min_seconds: float) -> np.ndarray:
    """Time invoke() until both `min_runs` calls and `min_seconds` have passed; milliseconds per call."""
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - started < min_seconds:
        t = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - t) / 1e6)
    return np.asarray(samples)


def _ready(interpreter, seed: int, warmup_runs: int) -> None:
    """Set the synthetic inputs once, then run the untimed warm-up."""
    inputs = interpreter.get_input_details()
    for d, value in zip(inputs, synthetic_inputs(inputs, np.random.default_rng(seed)), strict=True):
        interpreter.set_tensor(d["index"], value)
    for _ in range(warmup_runs):
        interpreter.invoke()


def interleaved(paths: dict[str, str | Path], rounds: int = 3, **kwargs) -> dict[str, dict]:
    """Benchmark several models in one process, alternating them round by round (the order rotates
    each round) so drift on a shared machine hits all of them alike. Per model: the median over
    rounds of p50, and every round's p50. `kwargs` go to `benchmark`."""
    names = list(paths)
    p50s: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, dict] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            last[name] = benchmark(paths[name], **kwargs)
            p50s[name].append(last[name]["latency_p50_ms"])
    return {
        n: {"latency_p50_ms": round(float(np.median(p50s[n])), 5), "round_p50_ms": p50s[n],
            "size_bytes": last[n]["size_bytes"], "threads": last[n]["threads"]}  # fmt: skip
        for n in names
    }
