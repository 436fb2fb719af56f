"""Emulated ARM cost: the aarch64 runtime under QEMU counts instructions per inference.

Covered: counts repeat within 0.1 % and the emulated int8 output equals the x86 runtime's bit for
bit; the dot-product core runs int8 for fewer instructions than fp32; the A55's cpuinfo makes
the runtime pick other kernels than the A76's; a missing harness is one line, and the arm_cost
stage then records `available: false`; the flatbuffer analysis tells full-int8 files from mixed
ones. The harness is built by `make arm-setup`; without it these tests skip, unless
EDGESMITH_REQUIRE_ARM=1 (CI) makes its absence a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipelines.edge import emulate
from tests.conftest import run_env


def _harness_or_skip():
    try:
        return emulate.harness()
    except emulate.HarnessMissing as exc:
        if os.environ.get("EDGESMITH_REQUIRE_ARM") == "1":
            pytest.fail(f"EDGESMITH_REQUIRE_ARM=1 but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def harness():
    return _harness_or_skip()


def test_counts_repeat_and_the_int8_output_equals_the_x86_runtime(harness, tiny_models, tmp_path):
    from pipelines.edge import bench, runtime

    first = emulate.count([tiny_models["int8"]], "cortex-a53", invokes=3, outputs=tmp_path)[0]
    again = emulate.count([tiny_models["int8"]], "cortex-a53", invokes=3)[0]
    assert first["instructions"] > 10_000
    # within 0.1 %, or the few hundred instructions of Python's own work between the markers on so small a model
    slack = max(1e-3 * first["instructions"], 400)
    assert abs(first["instructions"] - again["instructions"]) <= slack
    assert all(abs(c - first["instructions"]) <= slack for c in first["invokes"][1:])

    interpreter = runtime.load(tiny_models["int8"])
    inputs = interpreter.get_input_details()
    for d, value in zip(inputs, bench.synthetic_inputs(inputs, np.random.default_rng(0)), strict=True):
        interpreter.set_tensor(d["index"], value)
    interpreter.invoke()
    on_x86 = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    on_arm = np.load(tmp_path / "0.npy")
    assert on_arm.dtype == np.int8 and on_x86.dtype == np.int8
    np.testing.assert_array_equal(on_arm, on_x86)


@pytest.fixture(scope="module")
def conv_files(tmp_path_factory):
    """A calibration-suite conv stack (two 3x3 convs, 14x14x32 -> 64) in fp32 and int8."""
    from pipelines.vision import calibration, convert

    model = calibration.SUITE["conv14_c32_w64x2"]()
    out = tmp_path_factory.mktemp("conv")
    fp32, int8 = out / "conv_fp32.tflite", out / "conv_int8.tflite"
    fp32.write_bytes(convert.to_tflite_fp32(model))
    int8.write_bytes(convert.to_tflite_int8(model, calibration.calibration_inputs(model, 32, 0)))
    return [fp32, int8]


def test_dot_product_core_runs_int8_cheaper_and_the_a55_picks_its_own_kernels(harness, conv_files):
    files = conv_files
    a76 = [r["instructions"] for r in emulate.count(files, "cortex-a76")]
    a55 = [r["instructions"] for r in emulate.count(files, "cortex-a55")]
    assert a76[1] < a76[0]  # int8 below fp32 with dot-product kernels
    assert a55 != a76  # same instruction set, other cpuinfo: other kernels


def test_missing_harness_is_one_line(tmp_path, tiny_models):
    with pytest.raises(emulate.HarnessMissing, match="make arm-setup"):
        emulate.count([tiny_models["int8"]], "cortex-a53", home=tmp_path)
    with pytest.raises(emulate.UserError, match="unknown emulated core"):
        emulate.core_spec("cortex-x9")


def test_arm_cost_stage_without_harness_records_the_fallback(tmp_path, tiny_models):
    models = tmp_path / "tflite"
    models.mkdir()
    (models / "tiny_int8.tflite").write_bytes(tiny_models["int8"].read_bytes())
    params = tmp_path / "params.yaml"
    params.write_text(open("params.yaml").read())
    out = tmp_path / "arm_cost.json"
    env = {**run_env(), "EDGESMITH_ARM_HOME": str(tmp_path / "none"), "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    done = subprocess.run([sys.executable, "-m", "stages.arm_cost", "--params", str(params), "--models", str(models),
                           "--metrics", str(out)], env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["available"] is False and "make arm-setup" in doc["reason"]
    assert "Traceback" not in done.stderr


def test_arm_cost_stage_counts_every_file_on_every_emulated_profile(harness, tmp_path, tiny_models):
    models = tmp_path / "tflite"
    models.mkdir()
    for k in ("fp32", "int8"):
        (models / f"tiny_{k}.tflite").write_bytes(tiny_models[k].read_bytes())
    out = tmp_path / "arm_cost.json"
    env = {**run_env(), "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    done = subprocess.run([sys.executable, "-m", "stages.arm_cost", "--params", "params.yaml", "--models", str(models),
                           "--metrics", str(out)], env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["available"] is True
    assert set(doc["models"]) == {"tiny_fp32", "tiny_int8"}
    assert set(doc["profiles"]) == {"cortex_a53", "cortex_a55", "cortex_a76"}
    a76 = doc["models"]["tiny_int8"]["cortex_a76"]
    assert a76["estimated_latency_ms"] == pytest.approx(a76["instructions"] / (2.0 * 2.4e6), rel=1e-3)


def test_analysis_tells_full_int8_from_float_files(tiny_models, student_mixed_file):
    from pipelines.edge import analyze

    assert analyze.analyze(tiny_models["int8"])["totals"]["integer_only"] is True
    assert analyze.analyze(tiny_models["fp32"])["totals"]["integer_only"] is False
    assert analyze.analyze(student_mixed_file)["totals"]["integer_only"] is False


@pytest.fixture(scope="module")
def student_mixed_file(tiny_models, tmp_path_factory):
    """The tiny model in int8 with its first conv kept in float (what `*_mixed_int8` files are)."""
    from pipelines.vision import quantize

    model, x = tiny_models["keras"], tiny_models["x"]
    first = next(layer.name for layer in model.layers if "conv" in layer.name)
    keep = quantize.layer_tensors(model, x[:50], [first])
    path = tmp_path_factory.mktemp("mixed") / "tiny_mixed_int8.tflite"
    path.write_bytes(quantize.selective_int8(model, x[:100], keep))
    return path
