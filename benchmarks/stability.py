"""Run-to-run stability of `edgesmith bench`: is p50 latency repeatable on this machine?

Benchmarks each model several times, each run a fresh process, models and settings
interleaved so that drift in the machine's load hits all of them alike. With several
`--windows` values (1 = the plain median of all runs; K = the quietest of K windows'
medians, the benchmark's default estimator), each setting is measured in the same rounds,
side by side. Prints the spread of p50 per model and setting, (max - min) / median over the
rounds, and writes the figures as JSON. For windowed runs the median of all runs
(`latency_p50_all_ms`) is recorded too, so the two estimators are also compared on the very
same samples.

    .venv/bin/python benchmarks/stability.py models/tflite --rounds 8 --windows 1 5 \
        --json metrics/bench_stability.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(model: Path, windows: int, args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "pipelines.cli", "bench", str(model), "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--runs", str(args.runs), "--min-seconds", str(args.min_seconds),
               "--windows", str(windows), "--json", out.name]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        return json.loads(Path(out.name).read_text())


def spread(values: list[float]) -> float:
    """(max - min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def load_average() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help=".tflite files, or folders of them")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200, help="minimum timed runs per benchmark (all windows together)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed seconds per benchmark (all windows)")
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 5], help="settings compared side by side")
    ap.add_argument("--tolerance", type=float, default=0.05, help="allowed (max - min) / median of p50")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    models = [f for m in args.models for f in (sorted(m.glob("*.tflite")) if m.is_dir() else [m])]
    if not models or not all(m.is_file() for m in models):
        print(f"error: no .tflite files in {' '.join(map(str, args.models))}", file=sys.stderr)
        return 2
    runs = [(f"{m.stem} w{k}", m, k) for m in models for k in args.windows]
    results: dict[str, list[dict]] = {name: [] for name, _, _ in runs}
    load = [load_average()]
    started = time.time()
    for r in range(args.rounds):
        order = runs[r % len(runs) :] + runs[: r % len(runs)]
        for name, m, k in order:
            results[name].append(one_run(m, k, args))
        load.append(load_average())
        print(f"round {r + 1}/{args.rounds}: "
              + ", ".join(f"{k} {v[-1]['latency_p50_ms']:.4f} ms" for k, v in results.items()), flush=True)  # fmt: skip
    rows = {}
    for name, m, k in runs:
        p50 = [x["latency_p50_ms"] for x in results[name]]
        p50_all = [x["latency_p50_all_ms"] for x in results[name]]
        rows[name] = {"model": m.stem, "windows": k, "p50_ms": p50, "median_ms": statistics.median(p50),
                      "spread": spread(p50), "p50_all_ms": p50_all, "spread_all": spread(p50_all),
                      "window_p50_ms": [x["latency_p50_windows_ms"] for x in results[name]]}  # fmt: skip
    print(f"\n{'model, windows':<30} {'median p50 ms':>14} {'spread':>8} {'all-runs p50 spread':>20}")
    for name, row in rows.items():
        flag = "ok" if row["spread"] <= args.tolerance else "UNSTABLE"
        print(f"{name:<30} {row['median_ms']:>14.4f} {row['spread']:>7.1%} {row['spread_all']:>20.1%}  {flag}")
    stable = {k: all(r["spread"] <= args.tolerance for r in rows.values() if r["windows"] == k) for k in args.windows}
    for k, ok in stable.items():
        print(f"windows={k}: p50 within {args.tolerance:.0%} run to run: {'yes' if ok else 'no'} "
              f"({args.rounds} fresh processes per model)")  # fmt: skip
    print(f"load average (1, 5, 15 min) before: {load[0]}, after: {load[-1]}; {time.time() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"tolerance": args.tolerance, "stable": {str(k): v for k, v in stable.items()}, "rounds": args.rounds,
               "runs": args.runs, "min_seconds": args.min_seconds, "threads": args.threads,
               "load_average_per_round": load, "models": rows}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if all(stable.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
