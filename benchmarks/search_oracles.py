"""Search strategies side by side: regularized evolution (with its screening) vs random vs Bayesian
vs Hyperband, at one trial budget or one wall-clock budget.

Runs the real `search` stage (python -m stages.search) on the quick profile's dataset (or
`--params`/`--data`), once per oracle and seed, each in a fresh folder (no resumed trials), with
the search params otherwise unchanged. With `--seconds S` every search gets the same wall-clock
budget (`search.max_search_seconds`, screening included) and no trial cap. Prints a Markdown table
of the best *feasible* validation accuracy (int8, in the runtime), the hypervolume of the
(error, latency, size) front and the wall time per oracle (mean, min-max over seeds), and writes
every run's figures as JSON.

    nice -n 19 .venv/bin/python benchmarks/search_oracles.py --seeds 0 1 2 --seconds 150 \
        --json docs/experiments/search-oracles.json

The dataset must exist: `dvc repro profiles/quick/dvc.yaml:data` makes it. Speed claims belong
here, not in tests: the machine's load moves the times, so compare within one run.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "profiles" / "quick"


def run_search(params: dict, data: Path, folder: Path) -> dict:
    """One search stage run in `folder`; returns metrics/search.json plus the wall time."""
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, "-m", "stages.search", "--params", str(folder / "params.yaml"), "--data", str(data),
           "--out", str(folder / "arch.json"), "--plots", str(folder / "plots"), "--metrics", str(folder / "search.json"),
           "--tuner-dir", str(folder / ".tuner")]  # fmt: skip
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed", "wall_seconds": wall}
    return {**json.loads((folder / "search.json").read_text()), "wall_seconds": wall}


def summary(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracles", nargs="+", default=["evolution", "random", "bayesian", "hyperband"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=8, help="the same trial budget for every oracle")
    ap.add_argument("--seconds", type=float, help="the same wall-clock budget for every oracle instead (no trial cap)")
    ap.add_argument("--params", type=Path, default=QUICK / "params.yaml")
    ap.add_argument("--data", type=Path, default=QUICK / "data" / "dataset.npz")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args()
    if not args.data.is_file():
        ap.error(f"{args.data}: not found; run `dvc repro profiles/quick/dvc.yaml:data` first")
    base = yaml.safe_load(args.params.read_text())
    runs = []
    with tempfile.TemporaryDirectory(prefix="search-oracles-") as tmp:
        for seed in args.seeds:
            for oracle in args.oracles:  # interleaved, so drift in the machine's load hits every oracle alike
                params = json.loads(json.dumps(base))
                params["base"]["code_root"] = str(ROOT)
                params["base"]["mlruns_dir"] = str(Path(tmp) / "mlruns")
                params["search"].update(oracle=oracle, seed=seed, max_trials=args.trials)
                if oracle == "hyperband":  # its resource is epochs: give its longest trials a few
                    params["search"]["epochs"] = max(3, params["search"]["epochs"])
                if args.seconds:
                    params["search"].update(max_trials=1000, max_search_seconds=args.seconds)
                folder = Path(tmp) / f"{oracle}-{seed}"
                folder.mkdir()
                r = run_search(params, args.data.resolve(), folder)
                runs.append({"oracle": oracle, "seed": seed, **r})
                print(f"{oracle} seed {seed}: best feasible val accuracy {r.get('best_val_accuracy', float('nan')):.4f}, "
                      f"hypervolume {r.get('hypervolume', float('nan')):.4f}, "
                      f"{r.get('completed', 0)} completed, {r.get('infeasible', 0)} infeasible, "
                      f"{r['wall_seconds']:.0f} s {r.get('error', '')}", flush=True)  # fmt: skip
    budget = f"{args.seconds:.0f} s" if args.seconds else f"{args.trials} trials"
    print(f"\n{budget} per search, seeds {', '.join(map(str, args.seeds))}, objective {base['search']['objective']}, "
          f"{args.params}\n")  # fmt: skip
    print("| oracle | best feasible val accuracy (int8) | hypervolume | completed / infeasible | wall time, s |")
    print("|---|---|---|---|---|")
    for oracle in args.oracles:
        mine = [r for r in runs if r["oracle"] == oracle and "error" not in r]
        acc = [r["best_val_accuracy"] * 100 for r in mine]
        print(f"| {oracle} | {summary(acc, '{:.2f}')} % | {summary([r['hypervolume'] for r in mine], '{:.4f}')} | "
              f"{summary([r['completed'] for r in mine], '{:.1f}')} / {summary([r['infeasible'] for r in mine], '{:.1f}')} | "
              f"{summary([r['wall_seconds'] for r in mine], '{:.0f}')} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
