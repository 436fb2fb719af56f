"""One Markdown row per profile run: what the default pipeline did on a dataset.

Reads the metrics of `dvc repro PROFILE/dvc.yaml:report` runs (each profile a folder with its
`metrics/`) and prints, per run: the data's shape, classes and split sizes, the teacher against
chance, the labels-only and distilled students, which student the chain went on with, the final
model and its drop from the teacher, and the summed stage time. Nothing is typed by hand.

    .venv/bin/python benchmarks/user_data.py profiles/try-rgb32 profiles/try-c100 >> docs/experiments/user-data.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.common import io  # noqa: E402

STAGES = ("data", "search", "teacher", "distill", "prune", "quantize", "calibration_suite", "calibrate", "benchmark",
          "report")  # fmt: skip
HEADER = ("| run | images (train/val/test) | shape | classes | teacher (chance) | labels-only | distilled "
          "| chain's student | final model | final accuracy | drop, points | within budget | stage time |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def row(folder: Path) -> str:
    m = {s: io.read_json(folder / "metrics" / f"{s}.json") for s in STAGES if (folder / "metrics" / f"{s}.json").is_file()}
    data, teacher, distill, report = m["data"], m["teacher"], m["distill"], m["report"]
    final = next(r for r in report["models"] if r["name"] == report["final"])
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    seconds = sum(doc.get("duration_s", 0) for doc in m.values())
    return (f"| {folder.name} | {data['train_count']}/{data['val_count']}/{data['test_count']} | "
            f"{'x'.join(map(str, data['image_shape']))} | {data['num_classes']} | {pct(teacher['test_accuracy'])} "
            f"({pct(teacher['chance_accuracy'])}) | {pct(distill['baseline_accuracy']['mean'])} | "
            f"{pct(distill['kd_accuracy']['mean'])} | {distill['chain']['student']} | `{final['name']}` | "
            f"{pct(final['accuracy'])} | {final['teacher_drop_points']:.2f} | {final['within_budget']} | "
            f"{seconds / 60:.1f} min |")  # fmt: skip


def main(folders: list[str]) -> int:
    print(HEADER)
    for f in folders:
        print(row(Path(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
