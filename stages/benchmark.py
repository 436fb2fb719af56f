"""Stage `benchmark`: measure every .tflite file in the TFLite runtime, analyse its flatbuffer
(MACs, memory-access cost, peak activations), and predict its latency on every device profile
with the roofline model; the host's prediction is checked against the measurement.
TFLite runtime and NumPy only: no TensorFlow in this stage."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.benchmark")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.benchmark", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of .tflite files")
    ap.add_argument("--calibration", required=True, help="metrics/calibrate.json (the fitted host profile)")
    ap.add_argument("--metrics", required=True, help="metrics/benchmark.json")
    args = ap.parse_args(argv)
    inputs = {"models": args.models, "calibration": args.calibration}
    with Stage("benchmark", args.params, sections=["benchmark", "devices"], inputs=inputs) as st:
        from pipelines.edge import bench, calibrate, host, measure

        settings = st.params["benchmark"]
        calibration = io.read_json(args.calibration)
        profiles = {"host": calibration["profile"], **calibrate.fitted_profiles(st.params["devices"]["profiles"], calibration)}
        files = sorted(Path(args.models).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.models}: no .tflite files to benchmark")
        results = {}
        for file in files:
            result = measure.measured_and_modelled(file, profiles, seed=st.seed, **bench.settings(settings))
            log.info("benchmark: %s measured %.4f ms, predicted %.4f ms on the host (%+.0f %%)", file.stem,
                     result["latency_p50_ms"], result["predicted_latency_ms"]["host"],
                     100 * result["prediction_error_host"])  # fmt: skip
            results[file.stem] = result
        errors = [abs(r["prediction_error_host"]) for r in results.values()]
        summary = {
            "host": host.fingerprint(),
            "host_prediction": {
                "within_20pct": round(sum(e <= 0.2 for e in errors) / len(errors), 4),
                "max_abs_error": round(max(errors), 4),
            },
            "profiles": profiles,
            "models": results,
        }
        st.finish(summary, args.metrics)


if __name__ == "__main__":
    main()
