"""Static analysis of .tflite files: MACs, params, bytes and peak activations against hand-computed numbers.

MACs and parameters of hand-built models are checked against hand counts and Keras; the analysis
runs with TensorFlow and torch made unimportable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.common.errors import ModelFileError
from pipelines.edge import analyze, runtime
from tests.test_edge import run_without_frameworks


def _build() -> dict:
    """Small untrained Keras models, with non-zero biases: the converter drops all-zero FC biases."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision.tfk import keras

    seed_everything(0)
    bias = keras.initializers.RandomNormal(stddev=0.1, seed=1)
    L = keras.layers

    x = keras.Input((16, 16, 4))
    h = L.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=bias)(x)
    conv = keras.Model(x, L.Conv2D(6, 3, strides=2, groups=2, bias_initializer=bias)(h))

    x = keras.Input((16, 16, 4))
    dw = keras.Model(x, L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, bias_initializer=bias)(x))

    x = keras.Input((4, 4, 2))
    h = L.Dense(16, activation="relu", bias_initializer=bias)(L.Flatten()(x))
    dense = keras.Model(x, L.Dense(10, bias_initializer=bias)(h))

    x = keras.Input((8, 8, 2))
    chain = keras.Model(x, L.Conv2D(4, 3, bias_initializer=bias)(L.Conv2D(8, 1, bias_initializer=bias)(x)))

    # x stays live across the middle conv that does not read it: the lifetime test.
    x = keras.Input((8, 8, 8))
    a = L.Conv2D(16, 1, bias_initializer=bias)(x)
    skip = keras.Model(x, L.Multiply()([x, L.Conv2D(1, 1, bias_initializer=bias)(a)]))

    x = keras.Input((8, 8, 4))
    h = L.Conv2DTranspose(2, 3, strides=2, padding="same", bias_initializer=bias)(x)
    h = L.AveragePooling2D(3, strides=1, padding="same")(L.MaxPool2D(2)(h))
    misc = keras.Model(x, L.Softmax()(L.GlobalAveragePooling2D()(h)))
    return {"conv": conv, "dw": dw, "dense": dense, "chain": chain, "skip": skip, "misc": misc}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Each Keras model, with its fp32 and (for conv, dw, dense) int8 TFLite file."""
    from pipelines.vision import convert

    out = tmp_path_factory.mktemp("analyze")
    rng = np.random.default_rng(0)
    result = {}
    for name, model in _build().items():
        files = {"keras": model, "fp32": out / f"{name}_fp32.tflite"}
        files["fp32"].write_bytes(convert.to_tflite_fp32(model))
        if name in ("conv", "dw", "dense"):
            calib = rng.integers(0, 256, size=(16, *model.input_shape[1:]), dtype=np.uint8)
            files["int8"] = out / f"{name}_int8.tflite"
            files["int8"].write_bytes(convert.to_tflite_int8(model, calib))
        result[name] = files
    return result


def _ops(result: dict, op: str) -> list[dict]:
    return [r for r in result["ops"] if r["op"] == op]


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_conv2d_macs_and_params(models, kind):
    r = analyze.analyze(models["conv"][kind])
    convs = _ops(r, "CONV_2D")
    # 3x3 same, 4 -> 8 channels on 16x16; then 3x3 stride 2 valid, 8 -> 6 channels in 2 groups, on 16x16 -> 7x7.
    assert [c["output_shape"] for c in convs] == [[1, 16, 16, 8], [1, 7, 7, 6]]
    assert [c["macs"] for c in convs] == [16 * 16 * 8 * (3 * 3 * 4), 7 * 7 * 6 * (3 * 3 * 8 // 2)]
    assert [c["params"] for c in convs] == [3 * 3 * 4 * 8 + 8, 3 * 3 * 4 * 6 + 6]
    assert r["totals"]["macs"] == 73728 + 10584
    assert r["totals"]["params"] == 296 + 222 == models["conv"]["keras"].count_params()
    dtype = {"fp32": "float32", "int8": "int8"}[kind]
    assert [c["dtype"] for c in convs] == [dtype, dtype]


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_depthwise_macs_and_params(models, kind):
    r = analyze.analyze(models["dw"][kind])
    (op,) = r["ops"]
    assert op["op"] == "DEPTHWISE_CONV_2D" and op["output_shape"] == [1, 16, 16, 8]
    assert op["macs"] == 16 * 16 * 8 * 3 * 3 == 18432
    assert op["params"] == 3 * 3 * 4 * 2 + 8 == 80 == models["dw"]["keras"].count_params()
    assert r["totals"]["macs"] == 18432 and r["totals"]["params"] == 80


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_dense_macs_and_params(models, kind):
    r = analyze.analyze(models["dense"][kind])
    assert [o["op"] for o in r["ops"]] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    # RESHAPE's constant new-shape tensor is an operand, not a parameter.
    assert [o["macs"] for o in r["ops"]] == [0, 32 * 16, 16 * 10]
    assert [o["params"] for o in r["ops"]] == [0, 32 * 16 + 16, 16 * 10 + 10]
    assert r["totals"]["macs"] == 672
    assert r["totals"]["params"] == 698 == models["dense"]["keras"].count_params()


@pytest.mark.parametrize("name", ["conv", "dw", "dense"])
def test_int8_weights_are_a_quarter_of_fp32(models, name):
    kernels = sum(w.size for w in models[name]["keras"].get_weights() if w.ndim > 1)
    biases = sum(w.size for w in models[name]["keras"].get_weights() if w.ndim == 1)
    fp32 = analyze.analyze(models[name]["fp32"])["totals"]["weight_bytes"]
    int8 = analyze.analyze(models[name]["int8"])["totals"]["weight_bytes"]
    assert fp32 == 4 * (kernels + biases)
    assert int8 == kernels + 4 * biases  # int8 kernels, int32 biases
    assert 0.25 <= int8 / fp32 < 0.33  # the slack is the int32 biases: 8 of the 80 params of "dw"


def test_dense_memory_access_is_weights_plus_input_plus_output(models):
    for kind, act, w in (("fp32", 4, 4), ("int8", 1, 1)):
        fc = _ops(analyze.analyze(models["dense"][kind]), "FULLY_CONNECTED")[0]
        assert fc["weight_bytes"] == 32 * 16 * w + 16 * 4  # biases: float32, or int32 when quantized
        assert fc["input_bytes"] == 32 * act and fc["output_bytes"] == 16 * act
        assert fc["memory_access_bytes"] == fc["weight_bytes"] + fc["input_bytes"] + fc["output_bytes"]


def test_int8_dtypes_and_quantization_match_the_interpreter(models):
    from ai_edge_litert.interpreter import Interpreter

    for name in ("conv", "dw", "dense"):
        r = analyze.analyze(models[name]["int8"])
        interpreter = Interpreter(model_path=str(models[name]["int8"]))
        tensors = r["tensors"]
        for ours, theirs in ((r["inputs"], interpreter.get_input_details()),
                             (r["outputs"], interpreter.get_output_details())):  # fmt: skip
            assert ours == [d["index"] for d in theirs]
            t = tensors[ours[0]]
            scale, zero_point = theirs[0]["quantization"]
            assert t["dtype"] == "int8" == np.dtype(theirs[0]["dtype"]).name
            assert t["scale"] == [pytest.approx(scale, rel=1e-6)] and t["zero_point"] == [zero_point]
        details = interpreter.get_tensor_details()
        assert details
        for d in details:
            t = tensors[d["index"]]
            assert (t["name"], t["shape"], t["dtype"]) == (d["name"], list(d["shape"]), np.dtype(d["dtype"]).name)
            np.testing.assert_allclose(t["scale"], d["quantization_parameters"]["scales"], rtol=1e-6)
            assert t["zero_point"] == list(d["quantization_parameters"]["zero_points"])
        per_channel = [t for t in tensors if len(t["scale"]) > 1]
        assert per_channel, "int8 kernels are quantized per output channel"
        assert all(o["dtype"] == "int8" for o in r["ops"])
    fp32 = analyze.analyze(models["conv"]["fp32"])
    assert all(t["scale"] == [] and t["zero_point"] == [] for t in fp32["tensors"])
    assert {t["dtype"] for t in fp32["tensors"]} == {"float32"}


def test_peak_activation_bytes_of_a_chain(models):
    r = analyze.analyze(models["chain"]["fp32"])
    assert [o["op"] for o in r["ops"]] == ["CONV_2D", "CONV_2D"]
    x, a, y = 8 * 8 * 2 * 4, 8 * 8 * 8 * 4, 6 * 6 * 4 * 4  # 512, 2048, 576 float32 bytes
    assert [o["live_activation_bytes"] for o in r["ops"]] == [x + a, a + y]
    assert r["totals"]["peak_activation_bytes"] == 2624
    assert r["totals"]["activation_bytes_read"] == x + a
    assert r["totals"]["activation_bytes_written"] == a + y


def test_peak_activation_counts_tensors_kept_for_later(models):
    r = analyze.analyze(models["skip"]["fp32"])
    assert [o["op"] for o in r["ops"]] == ["CONV_2D", "CONV_2D", "MUL"]
    x, a, b, y = 8 * 8 * 8 * 4, 8 * 8 * 16 * 4, 8 * 8 * 1 * 4, 8 * 8 * 8 * 4
    # The middle conv reads only a, but x is still live: it is read by the MUL.
    assert [o["live_activation_bytes"] for o in r["ops"]] == [x + a, x + a + b, x + b + y]
    assert r["totals"]["peak_activation_bytes"] == 6400
    assert r["ops"][2]["macs"] == 8 * 8 * 8  # element-wise: output elements


def test_transpose_conv_pools_mean_softmax(models):
    r = analyze.analyze(models["misc"]["fp32"])
    macs = {o["op"]: o["macs"] for o in r["ops"]}
    assert macs["TRANSPOSE_CONV"] == (8 * 8 * 4) * 3 * 3 * 2  # input elements x kh x kw x cout
    assert macs["MAX_POOL_2D"] == 8 * 8 * 2 * (2 * 2)
    assert macs["AVERAGE_POOL_2D"] == 8 * 8 * 2 * (3 * 3)
    assert macs["MEAN"] == 8 * 8 * 2  # reduction: input elements
    assert macs["SOFTMAX"] == 2
    assert r["totals"]["params"] == models["misc"]["keras"].count_params() == 3 * 3 * 2 * 4 + 2
    assert r["uncounted_ops"] == []


def test_op_macs_rules_without_a_model():
    assert analyze.op_macs("BATCH_MATMUL", [[2, 4, 5], [2, 5, 3]], [[2, 4, 3]]) == 2 * 4 * 3 * 5
    assert analyze.op_macs("BATCH_MATMUL", [[2, 5, 4], [2, 5, 3]], [[2, 4, 3]], {"adj_x": 1}) == 2 * 4 * 3 * 5
    assert analyze.op_macs("FULLY_CONNECTED", [[-1, 8], [3, 8], None], [[-1, 3]]) == 3 * 8  # -1 batch counts as 1
    assert analyze.op_macs("QUANTIZE", [[1, 4]], [[1, 4]]) == 0
    assert analyze.op_macs("SOME_NEW_OP", [[1, 4]], [[1, 4]]) is None


def test_result_is_json_and_runs_without_tensorflow_or_torch(models):
    path = models["conv"]["int8"]
    expected = analyze.analyze(path)
    assert json.loads(json.dumps(expected)) == expected
    proc = run_without_frameworks(
        "import json\n"
        "from pipelines.edge import analyze\n"
        f"print(json.dumps(analyze.analyze({str(path)!r})))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected


def test_format_table(models):
    r = analyze.analyze(models["conv"]["fp32"])
    lines = analyze.format_table(r).splitlines()
    assert len(lines) == 2 + len(r["ops"]) + 1
    assert lines[0].split()[:4] == ["#", "op", "dtype", "output"]
    first = lines[2].split()
    assert first[:4] == ["0", "CONV_2D", "float32", "1x16x16x8"]
    assert first[4] == "73,728" and first[-1] == "87.4"  # 73728 of 84312 MACs
    assert lines[-1].startswith("total: 2 ops, 84,312 MACs, 518 params")


def test_bad_files_raise_model_file_error(models, tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelFileError, match=r"model.tflite: not a TFLite model"):
        analyze.analyze(bad)
    with pytest.raises(ModelFileError, match=r"nothing.tflite: file not found"):
        analyze.analyze(tmp_path / "nothing.tflite")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(Path(models["conv"]["fp32"]).read_bytes()[:64])
    with pytest.raises(ModelFileError, match=r"truncated.tflite: corrupt TFLite flatbuffer") as exc:
        analyze.analyze(truncated)
    assert "\n" not in str(exc.value)


def test_schema_module_comes_from_the_runtime():
    assert runtime.schema_module().__name__ == "ai_edge_litert.schema_py_generated"
