"""Do the search's cheap figures rank architectures the way full training does?

Reads a search's trials.csv (the `search` stage's plots folder) and trains every completed trial's
architecture again the way the `distill` stage trains its baseline student (labels only, the
`distill` params of `--params`: epochs, batch size, learning rate, flips) on the whole training
split, `distill.workers` at a time, then tests it. Prints per architecture the trial's validation
accuracy, its NASWOT score, its target latency and the fully trained test accuracy, and Spearman's
rank correlation of the trial accuracy and of NASWOT with the full accuracy; writes them as JSON.

    nice -n 19 .venv/bin/python benchmarks/search_fidelity.py --trials plots/search/trials.csv \
        --data data/dataset.npz --seeds 1 --json docs/experiments/search-fidelity.json
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.common.params import load_params  # noqa: E402
from pipelines.common.stats import spearman, summarise  # noqa: E402


def trial_archs(path: Path, limit: int | None) -> list[dict]:
    """Completed trials of a trials.csv, as {trial_id, arch, val_accuracy, proxy, latency_ms, size_bytes}."""
    rows = [r for r in csv.DictReader(path.open()) if r["status"] == "completed"]
    out = []
    for r in rows[:limit]:
        arch = {"ds_widths": [int(w) for w in r["ds_widths"].split("-")] if r["ds_widths"] else [],
                "head": r["head"], "kernel_size": int(r["kernel_size"]), "block": r["block"],
                "expansion": int(r["expansion"]), "squeeze_excite": r["squeeze_excite"] == "True",
                "stem_stride": r["stem_stride"] == "True", "width_multiplier": float(r["width_multiplier"])}  # fmt: skip
        out.append({"trial_id": r["trial_id"], "arch": arch, "val_accuracy": float(r["accuracy"]),
                    "proxy": float(r["proxy"]) if r.get("proxy") else None, "latency_ms": float(r["latency_ms"]),
                    "size_bytes": int(r["size_bytes"])})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=Path, required=True, help="a search's trials.csv")
    ap.add_argument("--data", type=Path, required=True, help="the prepared dataset (.npz)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--seeds", type=int, default=1, help="full trainings per architecture (base.seed + i)")
    ap.add_argument("--max", type=int, default=None, help="at most this many trials, in trial order")
    ap.add_argument("--only", nargs="*", help="these trial ids only")
    ap.add_argument("--state", type=Path, help="keep each finished training here: a rerun trains only the rest")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pipelines.edge.analyze").setLevel(logging.WARNING)

    from pipelines.vision.kd_gain import train_students
    from pipelines.vision.losses import DistillLoss

    params = load_params(args.params)
    p, student = params["distill"], params["student"]
    trials = [t for t in trial_archs(args.trials, args.max) if not args.only or t["trial_id"] in args.only]
    loss = DistillLoss.from_params(p).labels_only()
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.state or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        jobs = [{"seed": params["base"]["seed"] + s, "kind": "baseline", "loss": vars(loss), "save": False,
                 "distill": p, "data": str(args.data), "arch": {**student, **t["arch"]}, "targets": None,
                 "teacher": None, "result": str(keep / f"{'-'.join(map(str, t['arch']['ds_widths']))}-{t['arch']['block']}-"
                                                       f"{t['trial_id']}-{s}.json")}
                for t in trials for s in range(args.seeds)]  # fmt: skip
        results = train_students(jobs, p["workers"])
    for i, t in enumerate(trials):
        runs = results[i * args.seeds : (i + 1) * args.seeds]
        t["full_accuracy"] = summarise([r["accuracy"] for r in runs])["mean"]
        t["full_accuracies"] = [r["accuracy"] for r in runs]
        t["full_seconds"] = sum(r["seconds"] for r in runs)
    full = [t["full_accuracy"] for t in trials]
    with_proxy = [t for t in trials if t["proxy"] is not None]
    out = {
        "trials": trials,
        "seeds": args.seeds,
        "distill": {k: p[k] for k in ("epochs", "batch_size", "learning_rate", "augment_flip", "min_steps")},
        "spearman_trial_vs_full": spearman([t["val_accuracy"] for t in trials], full),
        "spearman_proxy_vs_full": spearman([t["proxy"] for t in with_proxy], [t["full_accuracy"] for t in with_proxy]),
        "spearman_proxy_vs_trial": spearman([t["proxy"] for t in with_proxy], [t["val_accuracy"] for t in with_proxy]),
    }
    print("| trial | arch | trial val acc | NASWOT | latency, ms | full test acc |")
    print("|---|---|---|---|---|---|")
    for t in trials:
        a = t["arch"]
        desc = (f"{a['block']} k{a['kernel_size']} e{a['expansion']} {'-'.join(map(str, a['ds_widths']))} x{a['width_multiplier']}"
                f" {a['head']}{' s2' if a['stem_stride'] else ''}")  # fmt: skip
        proxy = f"{t['proxy']:.1f}" if t["proxy"] is not None else "-"
        print(f"| {t['trial_id']} | {desc} | {t['val_accuracy'] * 100:.2f} | {proxy} | {t['latency_ms']:.4f} | "
              f"{t['full_accuracy'] * 100:.2f} |")  # fmt: skip
    for k in ("spearman_trial_vs_full", "spearman_proxy_vs_full", "spearman_proxy_vs_trial"):
        print(f"{k}: {out[k]}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
