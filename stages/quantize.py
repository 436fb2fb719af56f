"""Stage `quantize`: convert each Keras model to fp32 and full-integer int8 TFLite; convert the
chain's model (`--chain`) also in the `quantize.chain_modes` (dynamic range, float16, QAT), and every
model that has the `quantize.float_layers` also to int8 with those layers in float (`_mixed_int8`); check
every file against the accuracy budget (`budget.max_accuracy_drop` points below the teacher) and,
when the chain's int8 file breaks it, try QAT, then selective quantization (the worst layers by
the quantization debugger kept in float) until it holds. Every .tflite file is evaluated on the
whole test set in the TFLite runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.params import comma_list
from pipelines.common.stage import Stage


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
    ap.add_argument("--chain", help="NAME of the model that goes through chain_modes and the budget fallbacks")
    ap.add_argument("--reference", default="teacher", help="NAME of the model the budget counts from")
    ap.add_argument("--out", required=True, help="folder for the .tflite files")
    ap.add_argument("--metrics", required=True, help="metrics/quantize.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, **{name: path for name, path in args.model}}
    with Stage("quantize", args.params, sections=["quantize", "budget"], inputs=inputs) as st:
        from pipelines.edge.predict import write_labels
        from pipelines.vision import quantize_chain
        from pipelines.vision.data import Dataset
        from pipelines.vision.evaluate import accuracy
        from pipelines.vision.tfk import load_model

        settings = st.params["quantize"]
        modes = comma_list(settings["chain_modes"], "quantize.chain_modes", quantize_chain.CHAIN_MODES)
        names = [name for name, _ in args.model]
        if args.chain and args.chain not in names:
            raise UserError(f"--chain {args.chain}: no --model of that name (given: {', '.join(names)})")
        ds = Dataset.load(args.data)
        rng = np.random.default_rng(st.seed)
        representative = ds.x_train[rng.permutation(len(ds.x_train))[: settings["representative_samples"]]]
        keras_models = {name: load_model(path) for name, path in args.model}
        keras_acc = {name: accuracy(m, ds.x_test, ds.y_test) for name, m in keras_models.items()}
        reference = keras_acc.get(args.reference)
        with io.atomic_dir(args.out) as out:
            files = quantize_chain.TFLiteFiles(out, args.out, ds, keras_models, keras_acc, reference,
                                               st.params["budget"]["max_accuracy_drop"], settings["eval_batch_size"])  # fmt: skip
            quantize_chain.convert_models(files, representative, comma_list(settings["float_layers"], "quantize.float_layers"))
            chain = quantize_chain.run_chain(args.chain, files, modes, representative, settings, st.seed) if args.chain else None
            write_labels(out, ds.class_names)  # the class names travel with the .tflite files
        metrics = {"test_count": int(len(ds.y_test)), "reference_accuracy": reference, "models": files.entries}
        if chain:
            metrics["chain"] = chain
        example = ds.example()
        st.finish(metrics, args.metrics, series=files.curves, models=[
            {"name": name, "kind": "tflite", "path": e["file"], "example": example, "params": {"dtype": e["dtype"]},
             "metrics": {k: e[k] for k in ("accuracy", "size_bytes") if e.get(k) is not None}}
            for name, e in files.entries.items()])  # fmt: skip


if __name__ == "__main__":
    main()
