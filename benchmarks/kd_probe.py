"""Distilled students for changed `distill` params, against the baselines of the last distill run.

The distill stage trains a baseline (labels only) and a distilled student per seed. To try another
loss setting only the distilled students need training again: this trains them with the `distill`
params of `--params` changed by `--set KEY=VALUE` (YAML values, validated like params.yaml), on
the pipeline's own dataset, teacher(s) and student architecture, `distill.workers` at a time, and
prints each seed's test accuracy and its gain over that seed's baseline in metrics/distill.json.
Those baselines only compare when the architecture and training settings (epochs, batch size,
learning rate, flips, born-again) match the ones they were trained with; otherwise, or with
`--baselines`, the baselines are trained here too. Nothing in the pipeline's outputs is changed.

    nice -n 19 .venv/bin/python benchmarks/kd_probe.py --seeds 42,43 \\
        --set temperature=2 alpha=0.9 logit_standardize=true --json /tmp/kd_probe.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.common import io  # noqa: E402
from pipelines.common.params import ParamsError, validate  # noqa: E402
from pipelines.common.stage import resolve  # noqa: E402
from pipelines.common.stats import summarise  # noqa: E402
from pipelines.vision.kd_gain import TRAINING_KEYS, by_seed, gain_points, load_teachers, train_students  # noqa: E402
from pipelines.vision.losses import DistillLoss  # noqa: E402
from pipelines.vision.student import student_arch  # noqa: E402


def overridden(params_path: Path, sets: list[str]) -> dict:
    """The validated params with `distill.KEY=VALUE` overrides applied."""
    raw = yaml.safe_load(params_path.read_text())
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.removeprefix("distill.")
        if not sep or key not in raw.get("distill", {}):
            raise ParamsError(f"--set {item}: expected KEY=VALUE, KEY a distill key: {', '.join(raw['distill'])}")
        raw["distill"][key] = yaml.safe_load(value)
    return validate(raw, f"{params_path.name} with --set {' '.join(sets)}".strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="distill params to change")
    ap.add_argument("--seeds", help="comma-separated seeds (default: those of the distill metrics)")
    ap.add_argument("--baselines", action="store_true", help="train the baseline students here too")
    ap.add_argument("--data", type=Path, help="default: data/dataset.npz beside the params file")
    ap.add_argument("--teacher", type=Path, help="default: models/teacher.keras beside the params file")
    ap.add_argument("--arch", type=Path, help="default: models/student_arch.json beside the params file")
    ap.add_argument("--distill-metrics", type=Path, help="default: metrics/distill.json beside the params file")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    # the pipeline's outputs, where its dvc.yaml (beside the params file) writes them
    args.data = args.data or resolve(args.params, "data/dataset.npz")
    args.teacher = args.teacher or resolve(args.params, "models/teacher.keras")
    args.arch = args.arch or resolve(args.params, "models/student_arch.json")
    args.distill_metrics = args.distill_metrics or resolve(args.params, "metrics/distill.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        params = overridden(args.params, args.set)
    except ParamsError as exc:
        ap.error(str(exc))
    for path in (args.data, args.teacher):
        if not path.is_file():
            ap.error(f"{path}: not found; run `dvc repro distill` first")
    p = params["distill"]
    arch = student_arch(params["student"], str(args.arch) if args.arch.is_file() else None)
    recorded = io.read_json(args.distill_metrics) if args.distill_metrics.is_file() else {}
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else recorded.get("seeds")
    if not seeds:
        ap.error("no seeds: pass --seeds (there are no distill metrics to take them from)")
    recorded_runs = {r["seed"]: r for r in recorded.get("runs", [])}
    comparable = (recorded.get("training") == {k: p[k] for k in TRAINING_KEYS}
                  and recorded.get("architecture") == ("teacher" if p["born_again"] else arch))  # fmt: skip
    train_baselines = args.baselines or not comparable or any(s not in recorded_runs for s in seeds)
    if train_baselines and not args.baselines:
        logging.info("kd_probe: the recorded baselines do not match these settings or seeds; training them here")


    from pipelines.vision.data import Dataset

    ds = Dataset.load(args.data)
    teachers = load_teachers(p, str(args.teacher), lambda rel: resolve(args.params, rel), ds, params["teacher"], seeds[0])
    loss = DistillLoss.from_params(p)
    kinds = [("kd", loss)] + ([("baseline", loss.labels_only())] if train_baselines else [])
    common = {"data": str(args.data), "arch": arch, "distill": p, "teacher_params": params["teacher"],
              "teacher": str(args.teacher), "targets": teachers.targets, "save": None}  # fmt: skip
    jobs = [{**common, "seed": s, "kind": kind, "loss": vars(kl)} for s in seeds for kind, kl in kinds]
    rows = by_seed(jobs, train_students(jobs, p["workers"]))
    for s, row in rows.items():
        row.setdefault("baseline_accuracy", recorded_runs.get(s, {}).get("baseline_accuracy"))
        row["kd_gain_points"] = gain_points(row)
        print(f"seed {s}: distilled {row['kd_accuracy']:.2%}, baseline {row['baseline_accuracy']:.2%}, "
              f"gain {row['kd_gain_points']:+.2f} points")  # fmt: skip
    gain = summarise([r["kd_gain_points"] for r in rows.values()])
    print(f"kd_gain {gain['mean']:+.2f} ± {gain['std']:.2f} points over {len(rows)} seed(s)"
          f" ({'baselines trained here' if train_baselines else 'baselines from ' + str(args.distill_metrics)})")  # fmt: skip
    if args.json:
        io.write_json(args.json, {"set": args.set, "loss": vars(loss), "teachers": len(teachers.models), "runs": list(rows.values()),
                                  "kd_gain_points": gain, "baselines_trained": train_baselines})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
