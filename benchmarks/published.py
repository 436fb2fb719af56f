"""Emulated instruction counts against published single-core phone latencies of ImageNet models.

Builds standard 224x224x3, 1000-class architectures with `tf_keras.applications` (weights=None:
latency does not depend on weight values), converts each to fp32 TFLite (and full-integer int8
where a published int8 figure exists), counts aarch64 instructions per `invoke()` with
`pipelines.edge.emulate.count` (steady-state median) and MACs with `pipelines.edge.analyze`,
then compares, per published table and device column, each model's ratio to a reference model:
published latency ratio against the instruction-count ratio and against the MAC ratio. A
second reading fits one scale per column (the geometric mean of ms per instruction) and reports
each model's error against it, which does not depend on the choice of the reference.

Device columns map to emulated cores: Pixel 1 (Snapdragon 821, Kryo) and Pixel 2 (Snapdragon
835, Kryo 280, A73-class) to cortex-a72, Pixel 3 (Snapdragon 845, Kryo 385 Gold, A75-derived)
to cortex-a76. Every model is built and converted in its own process (TensorFlow's memory goes
with it) in a temporary folder, or in `--work DIR` to keep files and counts for a rerun.
One emulated process runs at a time.

    nice -n 10 .venv/bin/python benchmarks/published.py --work /tmp/published-work \\
        --json docs/experiments/published-latency.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Every figure below was read in a source named beside it; none is from memory.
SOURCES = {
    "mnv3-t3": {
        "title": 'Howard et al., "Searching for MobileNetV3", ICCV 2019 (arXiv 1905.02244v5), Table 3',
        "caption": (
            "Floating point performance on the Pixel family of phones; all latencies in ms, measured "
            "using a single large core with a batch size of one"
        ),
        "runtime": "TFLite Benchmark Tool (2019), fp32, single-threaded large core (Sec. 6.1.2)",
        "precision": "fp32",
        "reference": "mobilenet_v2_1.0",
        "columns": {"Pixel 1": "cortex-a72", "Pixel 2": "cortex-a72", "Pixel 3": "cortex-a76"},
        "ms": {
            "mobilenet_v3_large_1.0": [51, 61, 44],
            "mobilenet_v3_large_0.75": [39, 46, 40],
            "mobilenet_v2_1.0": [64, 76, 56],
            "mobilenet_v3_small_1.0": [15.8, 19.4, 14.4],
            "mobilenet_v3_small_0.75": [12.8, 15.6, 11.7],
            "mobilenet_v2_0.35": [16.6, 19.6, 13.9],
        },
        "left_out": "MnasNet-A1, ProxylessNAS, MnasNet-small: no tf_keras.applications builder",
    },
    "mnv3-t4": {
        "title": 'Howard et al., "Searching for MobileNetV3", ICCV 2019 (arXiv 1905.02244v5), Table 4',
        "caption": (
            "Quantized performance; all latencies in ms, measured using a single large core on the "
            "respective Pixel 1/2/3 device"
        ),
        "runtime": "TFLite (2019), 8-bit quantized checkpoints (the released ones are uint8), single large core",
        "precision": "int8",
        "reference": "mobilenet_v2_1.0",
        "columns": {"Pixel 1": "cortex-a72", "Pixel 2": "cortex-a72", "Pixel 3": "cortex-a76"},
        "ms": {
            "mobilenet_v3_large_1.0": [44, 42.5, 31.7],
            "mobilenet_v2_1.0": [52, 48.3, 37.0],
            "mobilenet_v3_small_1.0": [15.5, 14.9, 10.7],
            "mobilenet_v2_0.35": [16.7, 15.6, 11.9],
        },
    },
    "mnv2-t4": {
        "title": (
            'Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018 '
            "(arXiv 1801.04381), Table 4 (numbered Table 3 in another version)"
        ),
        "caption": (
            "Performance on ImageNet; running time in ms for a single large core of the Google Pixel 1 "
            "phone (using TF-Lite)"
        ),
        "runtime": "TF-Lite (2018), fp32, single large core",
        "precision": "fp32",
        "reference": "mobilenet_v2_1.0",
        "columns": {"Pixel 1": "cortex-a72"},
        "ms": {
            "mobilenet_v1_1.0": [113],
            "nasnet_mobile": [183],
            "mobilenet_v2_1.0": [75],
            "mobilenet_v2_1.4": [143],
        },
    },
    "tfm-v3": {
        "title": (
            "tensorflow/models, research/slim/nets/mobilenet/README.md (commit 0ba83cf0), "
            '"Mobilenet V3 Imagenet Checkpoints", float rows'
        ),
        "caption": (
            "All phone latencies are in milliseconds, measured on large core (TF-Lite, per the README's "
            "latency section)"
        ),
        "runtime": "TF-Lite, fp32, large core of Pixel 1/2/3",
        "precision": "fp32",
        "reference": "mobilenet_v3_large_1.0",
        "columns": {"Pixel 1": "cortex-a72", "Pixel 2": "cortex-a72", "Pixel 3": "cortex-a76"},
        "ms": {
            "mobilenet_v3_large_1.0": [51.2, 61, 44],
            "mobilenet_v3_large_0.75": [39.8, 48, 34],
            "mobilenet_v3_small_1.0": [15.8, 19.4, 14.4],
            "mobilenet_v3_small_0.75": [12.8, 15.9, 11.6],
        },
    },
    "tfm-v2": {
        "title": (
            "tensorflow/models, research/slim/nets/mobilenet/README.md (commit 0ba83cf0), "
            '"Mobilenet V2 Imagenet Checkpoints", column "Mobile CPU (ms) Pixel 1"'
        ),
        "caption": (
            "MobileNetV2 checkpoints at 224x224, Pixel 1 CPU latency in ms (the README's V3 section says "
            "phone latencies are measured on the large core using TF-Lite)"
        ),
        "runtime": "TF-Lite, fp32, Pixel 1 large core",
        "precision": "fp32",
        "reference": "mobilenet_v2_1.0",
        "columns": {"Pixel 1": "cortex-a72"},
        "ms": {
            "mobilenet_v2_1.4": [138.0],
            "mobilenet_v2_1.0": [73.8],
            "mobilenet_v2_0.75": [55.8],
            "mobilenet_v2_0.5": [28.7],
            "mobilenet_v2_0.35": [19.7],
        },
    },
}

# key -> (tf_keras.applications builder, its keyword arguments)
ARCHITECTURES = {
    "mobilenet_v1_1.0": ("MobileNet", {"alpha": 1.0}),
    "mobilenet_v2_1.4": ("MobileNetV2", {"alpha": 1.4}),
    "mobilenet_v2_1.0": ("MobileNetV2", {"alpha": 1.0}),
    "mobilenet_v2_0.75": ("MobileNetV2", {"alpha": 0.75}),
    "mobilenet_v2_0.5": ("MobileNetV2", {"alpha": 0.5}),
    "mobilenet_v2_0.35": ("MobileNetV2", {"alpha": 0.35}),
    "mobilenet_v3_large_1.0": ("MobileNetV3Large", {"alpha": 1.0, "include_preprocessing": False}),
    "mobilenet_v3_large_0.75": ("MobileNetV3Large", {"alpha": 0.75, "include_preprocessing": False}),
    "mobilenet_v3_small_1.0": ("MobileNetV3Small", {"alpha": 1.0, "include_preprocessing": False}),
    "mobilenet_v3_small_0.75": ("MobileNetV3Small", {"alpha": 0.75, "include_preprocessing": False}),
    "nasnet_mobile": ("NASNetMobile", {}),
}


def build_one(key: str, precision: str, out: str) -> None:
    """Build and convert one architecture (run in a child process: TensorFlow's memory goes with it)."""
    import numpy as np

    from pipelines.vision import convert
    from pipelines.vision.tfk import keras

    name, kwargs = ARCHITECTURES[key]
    model = getattr(keras.applications, name)(input_shape=(224, 224, 3), weights=None, classes=1000, **kwargs)
    if precision == "fp32":
        flat = convert.to_tflite_fp32(model)
    else:  # ranges from random uint8 images: latency does not depend on them
        images = np.random.default_rng(0).integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
        flat = convert.to_tflite_int8(model, images)
    Path(out).write_bytes(flat)


def wanted(sources: dict, cores: list[str]) -> dict[tuple[str, str], set[str]]:
    """(architecture, precision) -> the cores its published columns need (restricted to `cores`)."""
    need: dict[tuple[str, str], set[str]] = {}
    for src in sources.values():
        for key in src["ms"]:
            need.setdefault((key, src["precision"]), set()).update(c for c in src["columns"].values() if c in cores)
    return need


def measure(need: dict, work: Path, invokes: int, all_cores: bool, cores: list[str]) -> dict:
    """Build, analyse and count every model; figures kept in work/counts.json so a rerun resumes."""
    from pipelines.edge import analyze, emulate

    cache_file = work / "counts.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    for (key, precision), needed in sorted(need.items()):
        name = f"{key}_{precision}"
        entry = cache.setdefault(name, {"architecture": key, "precision": precision, "counts": {}})
        path = work / f"{name}.tflite"
        if not path.is_file():
            t0 = time.time()
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--build-one", key, precision, str(path)],
                           cwd=ROOT, check=True)  # fmt: skip
            print(f"  built {name} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        if "macs" not in entry:
            totals = analyze.analyze(path)["totals"]
            entry.update(macs=totals["macs"], params=totals["params"], size_bytes=totals["size_bytes"])
        for core in sorted(set(cores) if all_cores else needed):
            if core in entry["counts"]:
                continue
            t0 = time.time()
            [r] = emulate.count([path], core, invokes=invokes)
            if "error" in r:
                raise SystemExit(f"{name} on {core}: {r['error']}")
            entry["counts"][core] = {k: r[k] for k in ("instructions", "first_invoke", "invokes")}
            entry["counts"][core]["emulation_s"] = round(time.time() - t0, 1)
            print(f"  {name} on {core}: {r['instructions']:,} instructions ({time.time() - t0:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
            cache_file.write_text(json.dumps(cache, indent=1))
        cache_file.write_text(json.dumps(cache, indent=1))
    return cache


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else float("nan")


def compare(sources: dict, measured: dict) -> list[dict]:
    """Per published table and device column: ratios to the reference, errors, rank agreement."""
    out = []
    for sid, src in sources.items():
        prec, ref = src["precision"], src["reference"]
        for col, (device, core) in enumerate(src["columns"].items()):
            keys = [k for k in src["ms"] if core in measured[f"{k}_{prec}"]["counts"]]
            if ref not in keys:
                continue
            ms = {k: float(src["ms"][k][col]) for k in keys}
            ins = {k: measured[f"{k}_{prec}"]["counts"][core]["instructions"] for k in keys}
            macs = {k: measured[f"{k}_{prec}"]["macs"] for k in keys}
            # one scale per column: the geometric mean of ms per instruction (and per MAC)
            s_ins = math.exp(sum(math.log(ms[k] / ins[k]) for k in keys) / len(keys))
            s_mac = math.exp(sum(math.log(ms[k] / macs[k]) for k in keys) / len(keys))
            rows = []
            for k in keys:
                pub, emu, mac = ms[k] / ms[ref], ins[k] / ins[ref], macs[k] / macs[ref]
                rows.append({
                    "architecture": k, "published_ms": ms[k], "instructions": ins[k], "macs": macs[k],
                    "ratio_published": round(pub, 4), "ratio_instructions": round(emu, 4), "ratio_macs": round(mac, 4),
                    "error_instructions_pct": round(100 * (emu / pub - 1), 1),
                    "error_macs_pct": round(100 * (mac / pub - 1), 1),
                    "fit_error_instructions_pct": round(100 * (s_ins * ins[k] / ms[k] - 1), 1),
                    "fit_error_macs_pct": round(100 * (s_mac * macs[k] / ms[k] - 1), 1),
                })  # fmt: skip
            others = [r for r in rows if r["architecture"] != ref]
            vals = [ms[k] for k in keys]
            out.append({
                "source": sid, "device": device, "core": core, "precision": prec, "reference": ref, "rows": rows,
                "instructions_per_published_ms": round(1 / s_ins),
                "spearman_instructions": round(spearman(vals, [ins[k] for k in keys]), 3),
                "spearman_macs": round(spearman(vals, [macs[k] for k in keys]), 3),
                "max_abs_error_instructions_pct": max((abs(r["error_instructions_pct"]) for r in others), default=0.0),
                "max_abs_error_macs_pct": max((abs(r["error_macs_pct"]) for r in others), default=0.0),
                "within_25pct_instructions": sum(abs(r["error_instructions_pct"]) <= 25 for r in others),
                "within_25pct_macs": sum(abs(r["error_macs_pct"]) <= 25 for r in others),
                "compared": len(others),
            })  # fmt: skip
    return out


def int8_speedups(sources: dict, measured: dict) -> list[dict]:
    """Published int8/fp32 latency against emulated int8/fp32 instructions, same model, same device."""
    fp, q = sources["mnv3-t3"], sources["mnv3-t4"]
    rows = []
    for key in q["ms"]:
        if key not in fp["ms"]:
            continue
        for col, (device, core) in enumerate(q["columns"].items()):
            a, b = measured.get(f"{key}_fp32", {}), measured.get(f"{key}_int8", {})
            if core not in a.get("counts", {}) or core not in b.get("counts", {}):
                continue
            rows.append({"architecture": key, "device": device, "core": core,
                         "published": round(q["ms"][key][col] / fp["ms"][key][col], 3),
                         "instructions": round(b["counts"][core]["instructions"] / a["counts"][core]["instructions"], 3)})  # fmt: skip
    return rows


def markdown(comparisons: list[dict], speedups: list[dict]) -> str:
    lines = []
    for c in comparisons:
        lines += [
            f"### {c['source']} · {c['device']} → {c['core']} ({c['precision']}, reference {c['reference']})",
            "",
            "| architecture | published ms | instructions / invoke | MACs | ratio published | ratio instr. "
            "| ratio MACs | error instr. | error MACs | fit error instr. | fit error MACs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in c["rows"]:
            lines.append(
                f"| {r['architecture']} | {r['published_ms']:g} | {r['instructions']:,} | {r['macs'] / 1e6:.1f} M "
                f"| {r['ratio_published']:.3f} | {r['ratio_instructions']:.3f} | {r['ratio_macs']:.3f} "
                f"| {r['error_instructions_pct']:+.1f} % | {r['error_macs_pct']:+.1f} % "
                f"| {r['fit_error_instructions_pct']:+.1f} % | {r['fit_error_macs_pct']:+.1f} % |"
            )
        lines += [
            "",
            f"Spearman rank: instructions {c['spearman_instructions']:.3f}, MACs {c['spearman_macs']:.3f}; "
            f"within ±25 % of the published ratio: instructions {c['within_25pct_instructions']}/{c['compared']}, "
            f"MACs {c['within_25pct_macs']}/{c['compared']}; fitted scale "
            f"{c['instructions_per_published_ms'] / 1e6:.1f} M instructions per published ms.",
            "",
        ]
    if speedups:
        lines += ["### int8 / fp32, same model and device", "",
                  "| architecture | device | core | published | instructions |", "|---|---|---|---:|---:|"]  # fmt: skip
        lines += [f"| {r['architecture']} | {r['device']} | {r['core']} | {r['published']:.3f} | {r['instructions']:.3f} |"
                  for r in speedups]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--cores", nargs="+", default=["cortex-a72", "cortex-a76"])
    ap.add_argument("--all-cores", action="store_true", help="count every model on every --cores core")
    ap.add_argument("--invokes", type=int, default=3, help="per model and core; the first is not in the median")
    ap.add_argument("--work", help="keep built models and counts here (a rerun resumes); default: a temp folder")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--build-one", nargs=3, metavar=("KEY", "PRECISION", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_one:
        build_one(*args.build_one)
        return 0

    from pipelines.edge import emulate

    sources = {k: SOURCES[k] for k in args.sources}
    need = wanted(sources, args.cores)
    with tempfile.TemporaryDirectory(prefix="edgesmith-published-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        measured = measure(need, work, args.invokes, args.all_cores, args.cores)
    comparisons = compare(sources, measured)
    speedups = int8_speedups(sources, measured) if {"mnv3-t3", "mnv3-t4"} <= set(sources) else []
    print(markdown(comparisons, speedups))
    if args.json:
        result = {
            "what": "emulated aarch64 instructions per invoke vs published single-core phone latencies",
            "harness": emulate.describe(),
            "invokes": args.invokes,
            "sources": sources,
            "architectures": {
                k: {
                    "builder": f"tf_keras.applications.{b}",
                    "kwargs": kw,
                    "input_shape": [224, 224, 3],
                    "classes": 1000,
                    "weights": None,
                }
                for k, (b, kw) in ARCHITECTURES.items()
            },  # fmt: skip
            "models": measured,
            "comparisons": comparisons,
            "int8_over_fp32": speedups,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
