"""Stage `device_bench`: when `target.device` is a device over SSH (USER@HOST), measure every
.tflite file there with the device's own Python and TFLite runtime (`edgesmith bench --remote`),
the same benchmark as the host's. Otherwise it records that there is no device to measure and
the report takes its evidence from the emulated count or the roofline. TFLite runtime only."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.device_bench")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.device_bench", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="folder of .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/device_bench.json")
    args = ap.parse_args(argv)
    with Stage("device_bench", args.params, sections=["target", "benchmark"], inputs={"models": args.models}) as st:
        from pipelines.edge import bench, remote

        t = st.params["target"]
        if "@" not in t["device"]:
            reason = f"target.device is {t['device']!r}, not a device over SSH (USER@HOST)"
            log.info("device_bench: nothing to measure: %s", reason)
            st.finish({"available": False, "reason": reason, "models": {}}, args.metrics)
            return
        files = sorted(Path(args.models).glob("*.tflite"))
        if not files:
            raise UserError(f"{args.models}: no .tflite files to benchmark")
        identity = st.resolve(t["ssh_identity"]) if t["ssh_identity"] else None
        models, device = {}, None
        for file in files:
            r = remote.bench_remote(file, t["device"], port=t["ssh_port"], identity=identity, python=t["ssh_python"],
                                    ssh_options=t["ssh_options"] or (), **bench.settings(st.params["benchmark"]))  # fmt: skip
            device = r.pop("host")
            models[file.stem] = r
            log.info("device_bench: %s p50 %.4f ms on %s", file.stem, r["latency_p50_ms"], t["device"])
        st.finish({"available": True, "device": t["device"], "host": device, "models": models}, args.metrics)


if __name__ == "__main__":
    main()
