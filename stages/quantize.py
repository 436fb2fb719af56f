"""Stage `quantize`: convert each Keras model to fp32 and full-integer int8 TFLite, and
evaluate every .tflite file on the whole test set in the TFLite runtime."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.quantize")


def named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.quantize", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--model", action="append", type=named_path, required=True, metavar="NAME=PATH",
                    help="a Keras model to convert (repeatable)")  # fmt: skip
    ap.add_argument("--out", required=True, help="folder for the .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/quantize.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, **{name: path for name, path in args.model}}
    with Stage("quantize", args.params, sections=["quantize"], inputs=inputs) as st:
        from pipelines.edge import evaluate
        from pipelines.vision import convert, train
        from pipelines.vision.data import Dataset
        from pipelines.vision.tfk import keras

        p = st.params["quantize"]
        ds = Dataset.load(args.data)
        rng = np.random.default_rng(st.seed)
        calib = ds.x_train[rng.permutation(len(ds.x_train))[: p["representative_samples"]]]
        models: dict[str, dict] = {}
        with io.atomic_dir(args.out) as out:
            for name, path in args.model:
                try:
                    model = keras.models.load_model(path)
                except (OSError, ValueError) as exc:
                    raise UserError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0]})") from None
                keras_acc = train.accuracy(model, ds.x_test, ds.y_test)
                for dtype, blob in (
                    ("float32", convert.to_tflite_fp32(model)),
                    ("int8", convert.to_tflite_int8(model, calib)),
                ):
                    variant = f"{name}_{'fp32' if dtype == 'float32' else dtype}"
                    file = out / f"{variant}.tflite"
                    file.write_bytes(blob)
                    acc = evaluate.accuracy(file, ds.x_test, ds.y_test, p["eval_batch_size"])
                    models[variant] = {
                        "file": str(Path(args.out) / file.name),
                        "dtype": dtype,
                        "source_model": name,
                        "accuracy": acc,
                        "keras_accuracy": keras_acc,
                        "accuracy_drop_points": round((keras_acc - acc) * 100, 3),
                        "size_bytes": len(blob),
                        "params": int(model.count_params()),
                        "tensor_dtypes": evaluate.tensor_dtypes(file),
                    }
                    log.info("quantize: %s accuracy %.4f (Keras %.4f), %d bytes", variant, acc, keras_acc, len(blob))
        metrics = {"test_count": int(len(ds.y_test)), "models": models}
        st.finish(metrics, args.metrics, artifacts=sorted(Path(args.out).glob("*.tflite")))


if __name__ == "__main__":
    main()
