"""Run-to-run stability of `edgesmith bench`: is p50 latency repeatable on this machine?

Benchmarks every .tflite file in a folder several times, each run a fresh process, models
interleaved so that drift in the machine's load hits all of them alike. Prints the spread
of p50 per model, (max - min) / median, and writes the figures as JSON. With several
`--instances` values, each setting is measured in the same rounds, side by side.

    .venv/bin/python benchmarks/stability.py models/tflite --rounds 5 --instances 1 3 \
        --json metrics/bench_stability.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(model: Path, instances: int, args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "pipelines.cli", "bench", str(model), "--threads", str(args.threads),
               "--runs", str(args.runs), "--min-seconds", str(args.min_seconds), "--instances", str(instances),
               "--json", out.name]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        return json.loads(Path(out.name).read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--instances", type=int, nargs="+", default=[1], help="interpreters per run (one or more settings)")
    ap.add_argument("--tolerance", type=float, default=0.05, help="allowed (max - min) / median of p50")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    models = sorted(args.folder.glob("*.tflite"))
    if not models:
        print(f"error: {args.folder}: no .tflite files", file=sys.stderr)
        return 2
    runs = [(f"{m.stem} x{n}", m, n) for m in models for n in args.instances]
    p50 = {name: [] for name, _, _ in runs}
    for r in range(args.rounds):
        for name, m, n in runs:
            p50[name].append(one_run(m, n, args)["latency_p50_ms"])
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.4f} ms" for k, v in p50.items()), flush=True)
    rows = {}
    for name, m, n in runs:
        values = p50[name]
        med = statistics.median(values)
        rows[name] = {"model": m.stem, "instances": n, "p50_ms": values, "median_ms": med,
                      "spread": (max(values) - min(values)) / med}  # fmt: skip
    print(f"\n{'model x interpreters':<28} {'median p50 ms':>14} {'spread':>8}")
    for name, row in rows.items():
        flag = "ok" if row["spread"] <= args.tolerance else "UNSTABLE"
        print(f"{name:<28} {row['median_ms']:>14.4f} {row['spread']:>7.1%}  {flag}")
    stable = {n: all(r["spread"] <= args.tolerance for r in rows.values() if r["instances"] == n) for n in args.instances}
    for n, ok in stable.items():
        print(f"{n} interpreter(s) per run: p50 within {args.tolerance:.0%} run to run: {'yes' if ok else 'no'} "
              f"({args.rounds} fresh processes per model)")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"tolerance": args.tolerance, "stable": stable, "rounds": args.rounds, "min_seconds": args.min_seconds,
               "models": rows}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if all(stable.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
