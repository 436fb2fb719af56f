"""The guest side of `pipelines.edge.emulate`: run inside `qemu-aarch64` by the arm64 Python.

For each model: load it with the project's runtime loader (1 thread), set the benchmark's
synthetic inputs, then bracket an empty pair and each `invoke()` with the marker syscall
(`getppid`) that the counting plugin answers with its running instruction total. One JSON line
per model on stdout says whether it loaded; with --outputs DIR the first output of the last
invoke is saved as DIR/<index>.npy (to compare with the x86 runtime's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="emulate_guest")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--invokes", type=int, default=3)
    ap.add_argument("--outputs", default=None)
    args = ap.parse_args(argv)
    from pipelines.common.errors import UserError
    from pipelines.edge import bench, runtime

    for i, path in enumerate(args.models):
        try:
            interpreter = runtime.load(path, threads=1)
        except UserError as exc:
            print(json.dumps({"model": path, "error": str(exc)}), flush=True)
            continue
        inputs = interpreter.get_input_details()
        for d, value in zip(inputs, bench.synthetic_inputs(inputs, np.random.default_rng(0)), strict=True):
            interpreter.set_tensor(d["index"], value)
        os.getppid()
        os.getppid()  # the empty pair: what a marker pair costs by itself
        for _ in range(args.invokes):
            os.getppid()
            interpreter.invoke()
            os.getppid()
        if args.outputs:
            out = interpreter.get_output_details()[0]
            np.save(os.path.join(args.outputs, f"{i}.npy"), interpreter.get_tensor(out["index"]))
        print(json.dumps({"model": path, "invokes": args.invokes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
