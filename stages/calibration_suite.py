"""Stage `calibration_suite`: build the small fp32 and int8 models the host profile is fitted on."""

from __future__ import annotations

import argparse
import logging

from pipelines.common import io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.calibration_suite")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.calibration_suite", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for the suite's .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/calibration_suite.json")
    args = ap.parse_args(argv)
    with Stage("calibration_suite", args.params, sections=[]) as st:
        from pipelines.common.seeding import seed_everything
        from pipelines.vision import calibration, convert

        seed_everything(st.seed)
        made = {}
        with io.atomic_dir(args.out) as out:
            for name, build in calibration.SUITE.items():
                model = build()
                calib = calibration.calibration_inputs(model, 64, st.seed)
                for suffix, blob in (("fp32", convert.to_tflite_fp32(model)), ("int8", convert.to_tflite_int8(model, calib))):
                    (out / f"{name}_{suffix}.tflite").write_bytes(blob)
                    made[f"{name}_{suffix}"] = len(blob)
                log.info("calibration_suite: %s (%d parameters)", name, model.count_params())
        st.finish({"models": len(made), "size_bytes": made}, args.metrics)


if __name__ == "__main__":
    main()
