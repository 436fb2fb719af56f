"""Stage `quantize`: convert each Keras model to fp32 and full-integer int8 TFLite; convert the
chain's model (`--chain`) also in the `quantize.chain_modes` (dynamic range, float16, QAT), and every
model that has the `quantize.float_layers` also to int8 with those layers in float (`_mixed_int8`); check
every file against the accuracy budget (`budget.max_accuracy_drop` points below the teacher) and,
when the chain's int8 file breaks it, try QAT, then selective quantization (the worst layers by
the quantization debugger kept in float) until it holds. Every .tflite file is evaluated on the
whole test set in the TFLite runtime."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import budget, io
from pipelines.common.errors import UserError
from pipelines.common.params import comma_list
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.quantize")
CHAIN_MODES = ("dynamic", "float16", "qat")


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
        from pipelines.edge import evaluate
        from pipelines.vision import convert, distill, prune, quantize
        from pipelines.vision.data import Dataset
        from pipelines.vision.models import load_model

        p = st.params["quantize"]
        max_drop = st.params["budget"]["max_accuracy_drop"]
        modes = comma_list(p["chain_modes"], "quantize.chain_modes", CHAIN_MODES)
        names = [name for name, _ in args.model]
        if args.chain and args.chain not in names:
            raise UserError(f"--chain {args.chain}: no --model of that name (given: {', '.join(names)})")
        ds = Dataset.load(args.data)
        rng = np.random.default_rng(st.seed)
        calib = ds.x_train[rng.permutation(len(ds.x_train))[: p["representative_samples"]]]
        models: dict[str, dict] = {}
        keras_models = {name: load_model(path) for name, path in args.model}
        keras_acc = {name: distill.accuracy(m, ds.x_test, ds.y_test) for name, m in keras_models.items()}
        reference = keras_acc.get(args.reference)

        with io.atomic_dir(args.out) as out:

            def add(variant: str, blob: bytes, dtype: str, source: str, **extra) -> dict:
                file = out / f"{variant}.tflite"
                file.write_bytes(blob)
                acc = evaluate.accuracy(file, ds.x_test, ds.y_test, p["eval_batch_size"])
                entry = {
                    "file": str(Path(args.out) / file.name),
                    "dtype": dtype,
                    "source_model": source,
                    "accuracy": acc,
                    "keras_accuracy": keras_acc[source],
                    "accuracy_drop_points": round((keras_acc[source] - acc) * 100, 3),
                    "size_bytes": len(blob),
                    "gzip_bytes": prune.gzip_size(blob),
                    "params": int(keras_models[source].count_params()),
                    "tensor_dtypes": evaluate.tensor_dtypes(file),
                    **extra,
                }
                if reference is not None:
                    check = budget.check(variant, acc, reference, max_drop)
                    entry.update(teacher_drop_points=check["drop_points"], within_budget=check["within"])
                models[variant] = entry
                log.info(
                    "quantize: %s accuracy %.4f (Keras %.4f), %d bytes", variant, acc, keras_acc[source], len(blob)
                )
                return entry

            float_layers = comma_list(p["float_layers"], "quantize.float_layers")
            for name, model in keras_models.items():
                add(f"{name}_fp32", convert.to_tflite_fp32(model), "float32", name)
                add(f"{name}_int8", convert.to_tflite_int8(model, calib), "int8", name)
                if float_layers and all(layer in {x.name for x in model.layers} for layer in float_layers):
                    keep = quantize.layer_tensors(model, calib[:100], float_layers)
                    add(f"{name}_mixed_int8", quantize.selective_int8(model, calib, keep), "mixed", name,
                        float_layers=float_layers)  # fmt: skip

            chain = None
            if args.chain:
                chain = run_chain(args.chain, keras_models[args.chain], modes, add, models, ds, calib, p, st.seed,
                                  reference, max_drop)  # fmt: skip
        metrics = {"test_count": int(len(ds.y_test)), "reference_accuracy": reference, "models": models}
        if chain:
            metrics["chain"] = chain
        st.finish(metrics, args.metrics, artifacts=sorted(Path(args.out).glob("*.tflite")))


def run_chain(name, model, modes, add, models, ds, calib, p, seed, reference, max_drop) -> dict:
    """The chain's model in every extra mode, then the budget fallbacks: QAT, then selective int8."""
    from pipelines.vision import convert, prune, quantize
    from pipelines.vision.tfk import seed_everything

    sparsity = prune.overall_sparsity(prune.kernel_sparsity(model))
    prune_preserve = sparsity > 0.01

    def qat() -> dict:
        seed_everything(seed)  # dropout masks and shuffling: the same file from the same inputs
        q = quantize.quantization_aware(model, prune_preserve)
        quantize.train_quantization_aware(q, ds.x_train, ds.y_train, p["qat_epochs"], p["qat_learning_rate"], 128, seed)
        entry = add(f"{name}_qat_int8", convert.to_tflite_int8(q, calib), "int8", name,
                    prune_preserving=prune_preserve)  # fmt: skip
        entry["kernel_sparsity_kept"] = sparsity if prune_preserve else 0.0
        return entry

    if "dynamic" in modes:
        add(f"{name}_dynamic", quantize.to_tflite_dynamic(model), "dynamic", name)
    if "float16" in modes:
        add(f"{name}_float16", quantize.to_tflite_float16(model), "float16", name)
    if "qat" in modes:
        qat()

    ptq = models[f"{name}_int8"]
    attempts = [{"method": "ptq_int8", "model": f"{name}_int8", "accuracy": ptq["accuracy"],
                 "within_budget": ptq.get("within_budget")}]  # fmt: skip
    chain = {"model": name, "kernel_sparsity": sparsity, "attempts": attempts, "final": None, "given_up": None}
    if reference is None:
        chain["note"] = "no reference model: the budget was not checked"
        return chain
    if ptq["within_budget"]:
        chain["final"] = f"{name}_int8"
        return chain
    float_drop = round((reference - models[f"{name}_fp32"]["accuracy"]) * 100, 3)
    entry = models.get(f"{name}_qat_int8") or qat()
    attempts.append({"method": "qat_int8", "model": f"{name}_qat_int8", "accuracy": entry["accuracy"],
                     "within_budget": entry["within_budget"]})  # fmt: skip
    if entry["within_budget"]:
        chain["final"] = f"{name}_qat_int8"
        chain["given_up"] = "nothing: quantization-aware training recovered the accuracy"
        return chain
    if float_drop > max_drop:
        chain["note"] = (f"the float model is already {float_drop:.2f} points below the teacher (budget {max_drop}): "
                         "no quantization can bring it back; selective quantization was not tried")  # fmt: skip
        log.warning("quantize: %s", chain["note"])
        return chain
    errors = quantize.layer_errors(model, calib[:100])
    chain["layer_errors"] = errors
    k = 1
    while k <= min(p["selective_max_layers"], len(errors)):
        keep = [e["tensor_name"] for e in errors[:k]]
        variant = f"{name}_selective_int8"
        entry = add(variant, quantize.selective_int8(model, calib, keep), "mixed", name, float_layers=keep)
        attempts.append({"method": f"selective_int8 ({k} layers in float)", "model": variant, "float_layers": keep,
                         "accuracy": entry["accuracy"], "size_bytes": entry["size_bytes"],
                         "within_budget": entry["within_budget"]})  # fmt: skip
        if entry["within_budget"]:
            chain["final"] = variant
            chain["given_up"] = (f"{k} layer(s) kept in float ({', '.join(e['op'] for e in errors[:k])}): "
                                 f"{entry['size_bytes'] - ptq['size_bytes']:+d} bytes against full int8, float input "
                                 "and output, float kernels for those layers on the device")  # fmt: skip
            return chain
        k *= 2
    chain["note"] = "no attempt met the budget"
    log.warning("quantize: %s: no attempt met the budget of %.2f points", name, max_drop)
    return chain


if __name__ == "__main__":
    main()
