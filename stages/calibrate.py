"""Stage `calibrate`: fit the host's device profile to the calibration suite's measured latencies
(TFLite runtime only)."""

from __future__ import annotations

import argparse

from pipelines.common.stage import Stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.calibrate", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of calibration .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/calibrate.json")
    args = ap.parse_args(argv)
    with Stage("calibrate", args.params, sections=["benchmark"], inputs={"models": args.models}) as st:
        from pipelines.edge import bench, calibrate, host

        result = calibrate.calibrate(args.models, seed=st.seed, **bench.settings(st.params["benchmark"]))
        st.finish({"host": host.fingerprint(), **result}, args.metrics)


if __name__ == "__main__":
    main()
