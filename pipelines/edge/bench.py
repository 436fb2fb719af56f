"""Latency of a .tflite file in the TFLite runtime, measured the way `benchmark_model` does.

Fixed thread count, CPU affinity pinned, warm-up runs, then timed `invoke()` calls until
both a minimum count and a minimum time are reached. Only `invoke()` is timed; inputs are
set once, generated to match each input's dtype and quantization.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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


def benchmark(
    path: str | Path,
    threads: int = 1,
    warmup_runs: int = 10,
    min_runs: int = 100,
    min_seconds: float = 1.0,
    pin_cpu: int | None = 0,
    seed: int = 0,
) -> dict:
    """Measure one model. Returns sizes, init time, latency percentiles and memory growth."""
    path = runtime.check_tflite(path)
    cpus = None if pin_cpu is None else set(range(pin_cpu, pin_cpu + threads))
    with pinned(cpus) as affinity:
        rss_before = host.rss_bytes()
        peak_reset = host.reset_peak_rss()
        t0 = time.perf_counter()
        interpreter = runtime.load(path, threads=threads)
        init_ms = (time.perf_counter() - t0) * 1e3
        inputs = interpreter.get_input_details()
        for d, value in zip(inputs, synthetic_inputs(inputs, np.random.default_rng(seed)), strict=True):
            interpreter.set_tensor(d["index"], value)
        for _ in range(warmup_runs):
            interpreter.invoke()
        samples = []
        started = time.perf_counter()
        while len(samples) < min_runs or time.perf_counter() - started < min_seconds:
            t = time.perf_counter_ns()
            interpreter.invoke()
            samples.append((time.perf_counter_ns() - t) / 1e6)
        peak = host.peak_rss_bytes() if peak_reset else None
    ms = np.asarray(samples)
    result = {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "threads": threads,
        "cpu_affinity": affinity,
        "warmup_runs": warmup_runs,
        "runs": len(samples),
        "init_ms": round(init_ms, 4),
        "latency_mean_ms": round(float(ms.mean()), 5),
        "latency_std_ms": round(float(ms.std()), 5),
        "latency_min_ms": round(float(ms.min()), 5),
        "latency_p50_ms": round(percentile(ms, 50), 5),
        "latency_p90_ms": round(percentile(ms, 90), 5),
        "latency_p99_ms": round(percentile(ms, 99), 5),
        "peak_memory_bytes": None if peak is None or rss_before is None else max(peak - rss_before, 0),
        "host": host.fingerprint(),
    }
    log.info(
        "bench %s: p50 %.4f ms, p90 %.4f ms, p99 %.4f ms over %d runs, %d thread(s)",
        path.name, result["latency_p50_ms"], result["latency_p90_ms"], result["latency_p99_ms"], len(ms), threads,
    )  # fmt: skip
    return result


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
