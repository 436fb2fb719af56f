"""Stage `calibrate`: fit the host's device profile to the calibration suite's measured latencies,
and each emulated ARM profile to the suite's instruction counts under QEMU when the harness is
built (`make arm-setup`; without it `arm.available` is false). TFLite runtime only."""

from __future__ import annotations

import argparse
import logging

from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.calibrate")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.calibrate", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of calibration .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/calibrate.json")
    args = ap.parse_args(argv)
    sections = ["benchmark", "devices", "arm_cost"]
    with Stage("calibrate", args.params, sections=sections, inputs={"models": args.models}) as st:
        from pipelines.edge import bench, calibrate, emulate, host

        result = calibrate.calibrate(args.models, seed=st.seed, **bench.settings(st.params["benchmark"]))
        try:
            arm = calibrate.calibrate_emulated(args.models, st.params["devices"]["profiles"],
                                               st.params["arm_cost"]["invokes"])  # fmt: skip
        except emulate.HarnessMissing as exc:
            log.warning("calibrate: %s; the ARM profiles keep their documented figures", exc)
            arm = {"available": False, "reason": str(exc)}
        st.finish({"host": host.fingerprint(), **result, "arm": arm}, args.metrics)


if __name__ == "__main__":
    main()
