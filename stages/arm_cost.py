"""Stage `arm_cost`: count the aarch64 instructions per inference of every .tflite file on each
device profile's core, the real aarch64 TFLite runtime under QEMU (pipelines/edge/emulate.py),
and estimate its latency there as instructions / (ipc x clock).

Without the harness (`make arm-setup`) the stage says so in one line and writes metrics with
`available: false`; the report then falls back to the roofline prediction. TFLite runtime only."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.arm_cost")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.arm_cost", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/arm_cost.json")
    args = ap.parse_args(argv)
    with Stage("arm_cost", args.params, sections=["arm_cost", "devices"], inputs={"models": args.models}) as st:
        from pipelines.edge import emulate

        files = sorted(Path(args.models).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.models}: no .tflite files to count")
        profiles = st.params["devices"]["profiles"]
        try:
            harness = emulate.describe()
        except emulate.HarnessMissing as exc:
            log.warning("arm_cost: %s; the report uses the roofline prediction instead", exc)
            st.finish({"available": False, "reason": str(exc), "profiles": {}, "models": {}}, args.metrics)
            return
        result = emulate.profile_costs(files, profiles, invokes=st.params["arm_cost"]["invokes"])
        for stem, per_profile in result["models"].items():
            log.info("arm_cost: %s %s", stem, ", ".join(
                f"{p} {c['instructions'] / 1e3:,.0f} k instr ({c['estimated_latency_ms']:.3f} ms)"
                for p, c in per_profile.items()))  # fmt: skip
        st.finish({"available": True, "harness": harness, **result}, args.metrics)


if __name__ == "__main__":
    main()
