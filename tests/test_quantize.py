"""Quantization modes: the dtypes in each file, selective quantization keeping the named layers in
float, and pruning-preserving QAT keeping the zeros in the int8 weights.

Covered: the dtypes inside dynamic-range and float16 files; selective quantization keeping the
named layer's weights and output in float while every other layer is int8; slow: pruning-preserving
QAT keeps every pruned weight at zero in the int8 file (plain QAT does not).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_images
from tests.test_distill import ARCH, TRAIN


def _dtypes(blob: bytes, tmp_path, name: str) -> dict[str, str]:
    """Tensor name -> dtype of every tensor in the file."""
    from pipelines.edge import runtime

    path = tmp_path / f"{name}.tflite"
    path.write_bytes(blob)
    return {d["name"]: np.dtype(d["dtype"]).name for d in runtime.load(path).get_tensor_details()}


def _layers(blob: bytes, tmp_path, name: str) -> dict[str, tuple[np.ndarray, str]]:
    """Output tensor name -> (weights, output dtype) of every conv / depthwise / dense op in the file."""
    from pipelines.edge import runtime

    path = tmp_path / f"{name}.tflite"
    path.write_bytes(blob)
    interpreter = runtime.load(path)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    out = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weights, output = interpreter.get_tensor(op["inputs"][1]), tensors[op["outputs"][0]]
            out[output["name"]] = (weights, np.dtype(output["dtype"]).name)
    return out


def _layer_dtypes(blob: bytes, tmp_path, name: str) -> dict[str, tuple[str, str]]:
    """Output tensor name -> (weights dtype, output dtype) of every conv / depthwise / dense op."""
    return {k: (w.dtype.name, o) for k, (w, o) in _layers(blob, tmp_path, name).items()}


@pytest.fixture(scope="module")
def student():
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import distill
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.student import build_student

    x, y = tiny_images()
    seed_everything(0)
    # 64 channels: the logits kernel (2*2*64 x 10) passes dynamic range's 1024-weight minimum
    model = build_student((16, 16, 1), 10, {**ARCH, "ds_widths": [64]})
    distill.fit_student(model, x[:240], y[:240], x[240:], y[240:], DistillLoss(), TRAIN, 0)
    return model, x, y


def test_dynamic_and_float16_files_hold_the_promised_dtypes(student, tmp_path):
    from pipelines.vision import quantize

    model, _, _ = student
    dynamic = _dtypes(quantize.to_tflite_dynamic(model), tmp_path, "dynamic")
    half = _dtypes(quantize.to_tflite_float16(model), tmp_path, "half")
    assert dynamic["serving_default_image:0"] == "float32"  # activations stay float
    assert dynamic["student/logits/MatMul"] == "int8" and "float16" not in dynamic.values()
    assert "float16" in half.values() and "int8" not in half.values()


def test_selective_quantization_keeps_the_named_layers_in_float(student, tmp_path):
    from pipelines.vision import quantize

    model, x, _ = student
    errors = quantize.layer_errors(model, x[:40])
    assert {e["op"] for e in errors} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert [e["rmse_per_scale"] for e in errors] == sorted((e["rmse_per_scale"] for e in errors), reverse=True)
    keep = next(e["tensor_name"] for e in errors if "stem1_conv" in e["tensor_name"])
    full = _layer_dtypes(quantize.selective_int8(model, x[:40], []), tmp_path, "full")
    mixed = _layer_dtypes(quantize.selective_int8(model, x[:40], [keep]), tmp_path, "mixed")
    assert len(full) == len(mixed) == 5 and set(full.values()) == {("int8", "int8")}
    assert mixed[keep] == ("float32", "float32")  # its weights and its output
    assert all(v == ("int8", "int8") for k, v in mixed.items() if k != keep)


def test_layers_named_in_float_layers_become_float_ops(student, tmp_path):
    from pipelines.vision import quantize

    model, x, _ = student
    keep = quantize.layer_tensors(model, x[:40], ["stem0_conv"])
    assert len(keep) == 1 and "/stem0_conv/" in keep[0]  # the conv, fused with its BatchNorm and ReLU
    mixed = _layer_dtypes(quantize.selective_int8(model, x[:40], keep), tmp_path, "stem_float")
    assert mixed[keep[0]] == ("float32", "float32")
    assert sum(v == ("int8", "int8") for v in mixed.values()) == len(mixed) - 1
    with pytest.raises(ValueError, match="has no layer named nope"):
        quantize.layer_tensors(model, x[:40], ["stem0_conv", "nope"])


@pytest.mark.slow
def test_pruning_preserving_qat_keeps_the_zeros_in_the_int8_file(student, tmp_path):
    from pipelines.vision import convert, distill, prune, quantize
    from pipelines.vision.losses import DistillLoss

    model, x, y = student
    steps = int(np.ceil(240 / TRAIN["batch_size"]))
    sched, _ = prune.schedule("constant", 0.6, steps, 1, steps)
    wrapped = prune.prunable(model, sched)
    distill.fit_student(wrapped, x[:240], y[:240], x[240:], y[240:], DistillLoss(), {**TRAIN, "epochs": 1}, 0,
                        callbacks=[prune.step_callback()])  # fmt: skip
    pruned = prune.strip(wrapped)
    results = {}
    for preserve in (True, False):
        q = quantize.quantization_aware(pruned, prune_preserve=preserve)
        history = quantize.train_quantization_aware(q, x[:240], y[:240], 1, 1e-3, 32, 0)
        assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
        layers = _layers(convert.to_tflite_int8(q, x[:40]), tmp_path, f"qat_{preserve}")
        kernel, output = next(v for k, v in layers.items() if "ds0_pw_relu" in k)
        assert kernel.dtype == np.int8 and output == "int8"
        results[preserve] = float(np.mean(kernel == 0))
    zeros = float(np.mean(pruned.get_layer("ds0_pw").get_weights()[0] == 0))
    assert zeros == pytest.approx(0.6, abs=0.01)
    assert results[True] >= zeros  # every pruned weight is still 0 in the int8 file
    assert results[False] < zeros  # plain QAT fills them in


def test_the_chain_falls_back_from_ptq_to_qat_to_selective_until_the_budget_holds(student, tmp_path, monkeypatch):
    """A model whose full-int8 file breaks the budget: the chain tries QAT, then 1, 2, ... layers in
    float, and stops at the first file within it. Accuracies are scripted per file (the tiny test
    split cannot be made to break a budget on purpose); the files are real conversions."""
    from types import SimpleNamespace

    from pipelines.edge import evaluate
    from pipelines.vision import quantize_chain

    model, x, y = student
    scripted = {"student_fp32": [0.90], "student_int8": [0.80], "student_qat_int8": [0.82],
                "student_selective_int8": [0.85, 0.895]}  # fmt: skip
    calls: list[str] = []

    def accuracy(path, *_args):
        calls.append(path.stem)
        return scripted[path.stem].pop(0)

    monkeypatch.setattr(evaluate, "accuracy", accuracy)
    ds = SimpleNamespace(x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    files = quantize_chain.TFLiteFiles(tmp_path, "models/tflite", ds, {"student": model}, {"student": 0.9},
                                       reference=0.90, max_drop=1.0, eval_batch_size=64)  # fmt: skip
    representative = x[:100]
    quantize_chain.convert_models(files, representative, float_layers=[])
    p = {"qat_epochs": 1, "qat_learning_rate": 1e-4, "qat_min_steps": 0, "selective_max_layers": 4}
    chain = quantize_chain.run_chain("student", files, [], representative, p, seed=0)
    assert [a["method"] for a in chain["attempts"]] == [
        "ptq_int8", "qat_int8", "selective_int8 (1 layers in float)", "selective_int8 (2 layers in float)"]
    assert [a["within_budget"] for a in chain["attempts"]] == [False, False, False, True]
    assert chain["final"] == "student_selective_int8" and "2 layer(s) kept in float" in chain["given_up"]
    assert calls == ["student_fp32", "student_int8", "student_qat_int8", "student_selective_int8", "student_selective_int8"]
    dtypes = files.entries["student_selective_int8"]["tensor_dtypes"]
    assert "float32" in str(dtypes) and "int8" in str(dtypes)  # the last file really is mixed
    assert (tmp_path / "student_qat_int8.tflite").is_file()
