"""Peak resident memory of the data, teacher and distill stages as the dataset grows.

Generates RGB datasets (`pipelines/vision/synthetic.py`) of each `--images` count at `--size`,
runs the three stages on each in fresh processes (params.yaml with only `data.*` and the
training budget changed: one epoch, a narrow teacher, one seed, so the run is about the data's
memory and not hours of training), and prints and writes each stage's peak RSS (the kernel's
`ru_maxrss` of the stage's process) with the uint8 size of the training images beside it. Memory
bounded by design means the peak grows by about one copy of the images, not several.

    nice -n 19 .venv/bin/python benchmarks/memory.py --images 15000 30000 60000 --size 96 \\
        --json docs/experiments/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.vision import synthetic  # noqa: E402

STAGES = {
    "data": ["stages.data", "--out", "{w}/dataset.npz", "--metrics", "{w}/data.json"],
    "teacher": ["stages.teacher", "--data", "{w}/dataset.npz", "--out", "{w}/teacher.keras", "--history",
                "{w}/history.csv", "--metrics", "{w}/teacher.json"],  # fmt: skip
    "distill": ["stages.distill", "--data", "{w}/dataset.npz", "--teacher", "{w}/teacher.keras", "--teacher-metrics",
                "{w}/teacher.json", "--out", "{w}/students", "--metrics", "{w}/distill.json"],  # fmt: skip
}


def run_stage(cmd: list[str], env: dict) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit code) of one stage in its own process."""
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", *cmd], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    return usage.ru_maxrss * 1024, time.time() - t0, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[15000, 30000, 60000], help="training images per dataset")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.images:
            work = Path(tmp) / str(n)
            work.mkdir()
            t0 = time.time()
            synthetic.write(work / "images.npz", "npz", n, args.classes, args.size, test=n // 6)
            made = time.time() - t0
            p = json.loads(json.dumps(base))
            p["base"].update(mlruns_dir=str(work / "mlruns"), code_root=str(ROOT))
            p["data"].update(source="npz", path=str(work / "images.npz"), class_names=None)
            p["teacher"].update(widths=[8], dense_units=16, epochs=1, min_steps=0, min_gain_over_chance=0.0)
            p["distill"].update(seeds=1, epochs=1, min_steps=0, workers=1)
            (work / "params.yaml").write_text(yaml.safe_dump(p))
            row = {"images": n, "size": args.size, "image_bytes": n * args.size * args.size * 3,
                   "generate_seconds": round(made, 1)}  # fmt: skip
            for stage, cmd in STAGES.items():
                rss, seconds, code = run_stage([c.format(w=work) for c in cmd] + ["--params", str(work / "params.yaml")], env)
                if code != 0:
                    print(f"{stage} failed on {n} images (exit {code})", file=sys.stderr)
                    return 1
                row[f"{stage}_peak_rss_bytes"], row[f"{stage}_seconds"] = rss, round(seconds, 1)
            rows.append(row)
            print(f"{n:>7} images {args.size}x{args.size}x3 ({row['image_bytes'] / 1e9:.2f} GB uint8): "
                  + ", ".join(f"{s} {row[f'{s}_peak_rss_bytes'] / 1e9:.2f} GB" for s in STAGES), flush=True)  # fmt: skip
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    doc = {"rows": rows, "generator_peak_rss_bytes": self_rss, "host": os.uname().machine, "cpus": os.cpu_count()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
