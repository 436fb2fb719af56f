"""Stage `benchmark`: measure every .tflite file in the TFLite runtime (no TensorFlow here)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.benchmark")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.benchmark", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/benchmark.json")
    args = ap.parse_args(argv)
    with Stage("benchmark", args.params, sections=["benchmark"], inputs={"models": args.models}) as st:
        from pipelines.edge import bench, host

        p = st.params["benchmark"]
        files = sorted(Path(args.models).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.models}: no .tflite files to benchmark")
        results = {}
        for f in files:
            r = bench.benchmark(
                f, threads=p["threads"], warmup_runs=p["warmup_runs"], min_runs=p["min_runs"],
                min_seconds=p["min_seconds"], pin_cpu=p["pin_cpu"], seed=st.seed,
            )  # fmt: skip
            r.pop("host")
            results[f.stem] = r
        st.finish({"host": host.fingerprint(), "models": results}, args.metrics)


if __name__ == "__main__":
    main()
