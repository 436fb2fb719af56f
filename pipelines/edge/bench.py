"""Latency of a .tflite file in the TFLite runtime, measured the way `benchmark_model` does.

Fixed thread count, CPU affinity pinned, warm-up runs, then timed `invoke()` calls until
both a minimum count and a minimum time are reached. Only `invoke()` is timed; inputs are
set once, generated to match each input's dtype and quantization.

With `instances` > 1 the file is loaded that many times and the interpreters are timed in
turn, a short block each, over the whole window; percentiles are over all their runs. On the
shared 2-core host this did not narrow the run-to-run spread of p50 (it follows the host's
load, not one process's memory layout; see the README), so the default is one interpreter.
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


SETTINGS = ("threads", "warmup_runs", "min_runs", "min_seconds", "pin_cpu", "instances")
BLOCK_RUNS = 10  # invoke() calls an interpreter makes before the next one takes its turn


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
    instances: int = 1,
    seed: int = 0,
) -> dict:
    """Measure one model. Returns sizes, init time, latency percentiles and memory growth."""
    path = runtime.check_tflite(path)
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    cpus = None if pin_cpu is None else set(range(pin_cpu, pin_cpu + threads))
    with pinned(cpus) as affinity:
        rss_before = host.rss_bytes()
        peak_reset = host.reset_peak_rss()
        t0 = time.perf_counter()
        interpreters = [runtime.load(path, threads=threads)]
        init_ms = (time.perf_counter() - t0) * 1e3
        _ready(interpreters[0], seed, warmup_runs)
        peak = host.peak_rss_bytes() if peak_reset else None  # load + warm-up of one interpreter, as on a device
        for _ in range(instances - 1):
            interpreters.append(runtime.load(path, threads=threads))
            _ready(interpreters[-1], seed, warmup_runs)
        per_instance: list[list[float]] = [[] for _ in interpreters]
        count = 0
        started = time.perf_counter()
        while count < min_runs or time.perf_counter() - started < min_seconds:
            for interpreter, samples in zip(interpreters, per_instance, strict=True):
                for _ in range(BLOCK_RUNS):
                    t = time.perf_counter_ns()
                    interpreter.invoke()
                    samples.append((time.perf_counter_ns() - t) / 1e6)
            count += BLOCK_RUNS * len(interpreters)
    ms = np.concatenate([np.asarray(s) for s in per_instance])
    instance_p50 = [percentile(np.asarray(s), 50) for s in per_instance]
    result = {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "threads": threads,
        "cpu_affinity": affinity,
        "warmup_runs": warmup_runs,
        "instances": instances,
        "runs": len(ms),
        "init_ms": round(init_ms, 4),
        "latency_mean_ms": round(float(ms.mean()), 5),
        "latency_std_ms": round(float(ms.std()), 5),
        "latency_min_ms": round(float(ms.min()), 5),
        "latency_p50_ms": round(percentile(ms, 50), 5),
        "latency_p90_ms": round(percentile(ms, 90), 5),
        "latency_p99_ms": round(percentile(ms, 99), 5),
        "latency_p50_instances_ms": [round(v, 5) for v in instance_p50],
        "peak_memory_bytes": None if peak is None or rss_before is None else max(peak - rss_before, 0),
        "host": host.fingerprint(),
    }
    log.info(
        "bench %s: p50 %.4f ms, p90 %.4f ms, p99 %.4f ms over %d runs of %d interpreter(s), %d thread(s)",
        path.name, result["latency_p50_ms"], result["latency_p90_ms"], result["latency_p99_ms"], len(ms),
        instances, threads,
    )  # fmt: skip
    return result


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
