"""The edge path: TFLite runtime only. Conversion dtypes, runtime accuracy, and the benchmark.

Covered: the int8 file is full-integer, runtime outputs match Keras, p50 is the quietest window's
median, and `edgesmith bench` and the benchmark stage run with TensorFlow and torch made
unimportable; bad files and bad settings are one line.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.common.errors import ModelFileError, UserError
from pipelines.edge import bench, evaluate, runtime
from tests.conftest import ROOT, run_env

# Runs a snippet with TensorFlow and torch made unimportable, as on a device with only the runtime.
NO_FRAMEWORKS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "torch", "torch_geometric"):
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
"""
NO_FRAMEWORK_MODULES = "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch')]\n"


def run_without_frameworks(body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `body` in a fresh interpreter where TensorFlow and torch cannot be imported, and check none was."""
    code = NO_FRAMEWORKS + body + NO_FRAMEWORK_MODULES
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), cwd=ROOT,
                          timeout=timeout)  # fmt: skip


def test_int8_file_is_full_integer(tiny_models):
    d = evaluate.tensor_dtypes(tiny_models["int8"])
    assert d["inputs"] == ["int8"] and d["outputs"] == ["int8"]
    assert "float32" not in d["tensors"]
    assert d["tensors"]["int8"] > d["tensors"].get("int32", 0)
    f = evaluate.tensor_dtypes(tiny_models["fp32"])
    assert f["inputs"] == ["float32"] and "int8" not in f["tensors"]
    ratio = tiny_models["fp32"].stat().st_size / tiny_models["int8"].stat().st_size
    assert 2.0 < ratio < 4.5


def test_runtime_outputs_match_keras(tiny_models):
    x = tiny_models["x"][:200].astype(np.float32) / 255.0
    keras_logits = tiny_models["keras"].predict(x, verbose=0)
    fp32 = evaluate.predict(tiny_models["fp32"], x, batch_size=64)
    np.testing.assert_allclose(fp32, keras_logits, rtol=1e-4, atol=1e-4)
    int8 = evaluate.predict(tiny_models["int8"], x, batch_size=64)
    assert (int8.argmax(-1) == keras_logits.argmax(-1)).mean() > 0.95
    acc_keras = float((keras_logits.argmax(-1) == tiny_models["y"][:200]).mean())
    acc_int8 = evaluate.accuracy(tiny_models["int8"], tiny_models["x"][:200], tiny_models["y"][:200], 50)
    assert acc_keras > 0.8
    assert abs(acc_int8 - acc_keras) <= 0.02


def test_benchmark_measures_what_it_says(tiny_models):
    r = bench.benchmark(tiny_models["int8"], threads=1, warmup_runs=3, min_runs=30, min_seconds=0.2, pin_cpu=0)
    assert r["runs"] >= 30
    assert r["cpu_affinity"] == [0]
    assert r["threads"] == 1 and r["size_bytes"] == tiny_models["int8"].stat().st_size
    assert 0 < r["latency_min_ms"] <= r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
    assert r["init_ms"] > 0
    assert r["host"]["runtime"].startswith("ai-edge-litert")


def test_p50_is_the_quietest_window_median(tiny_models):
    r = bench.benchmark(tiny_models["fp32"], warmup_runs=2, min_runs=61, min_seconds=0.0, pin_cpu=0, windows=4)
    assert r["windows"] == 4 and len(r["latency_p50_windows_ms"]) == 4
    assert r["runs"] == 4 * 16  # each window makes ceil(min_runs / windows) calls when min_seconds is 0
    assert r["latency_p50_ms"] == min(r["latency_p50_windows_ms"])
    assert r["latency_min_ms"] <= r["latency_p50_ms"] <= r["latency_p50_all_ms"] <= max(r["latency_p50_windows_ms"])
    assert r["latency_p50_all_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
    one = bench.benchmark(tiny_models["fp32"], warmup_runs=0, min_runs=30, min_seconds=0.0, pin_cpu=0, windows=1)
    assert one["runs"] == 30 and one["latency_p50_ms"] == one["latency_p50_all_ms"] == one["latency_p50_windows_ms"][0]
    for bad in (0, -3):
        with pytest.raises(UserError, match="windows must be >= 1"):
            bench.benchmark(tiny_models["fp32"], windows=bad)


def test_bench_settings_come_from_the_benchmark_section():
    from pipelines.common.params import load_params

    p = load_params(ROOT / "params.yaml", ["benchmark"])["benchmark"]
    assert set(bench.settings(p)) == set(bench.SETTINGS)
    assert set(bench.SETTINGS) <= set(inspect.signature(bench.benchmark).parameters)


def test_synthetic_inputs_follow_dtype():
    rng = np.random.default_rng(0)
    ins = bench.synthetic_inputs(
        [{"shape": np.array([1, 4]), "dtype": np.int8}, {"shape": np.array([-1, 3]), "dtype": np.float32}], rng
    )
    assert ins[0].dtype == np.int8 and ins[0].shape == (1, 4)
    assert ins[1].dtype == np.float32 and ins[1].shape == (1, 3)


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "model.tflite"
    p.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelFileError, match=r"model.tflite: not a TFLite model"):
        runtime.load(p)
    with pytest.raises(ModelFileError, match=r"nothing.tflite: file not found"):
        runtime.load(tmp_path / "nothing.tflite")


def test_edgesmith_bench_runs_without_tensorflow_or_torch(tiny_models, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_without_frameworks(
        "from pipelines.cli import main\n"
        f"rc = main(['bench', {str(tiny_models['fp32'])!r}, '--runs', '20', '--warmup', '2',"
        f" '--min-seconds', '0', '--json', {str(out)!r}])\n"
        "assert rc == 0, rc\n"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["runs"] >= 20 and result["threads"] == 1 and result["latency_p50_ms"] > 0


def test_benchmark_stage_runs_without_tensorflow_or_torch(tiny_models, tmp_path):
    import shutil

    import yaml

    models = tmp_path / "tflite"
    models.mkdir()
    shutil.copy(tiny_models["int8"], models / "tiny_int8.tflite")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = str(tmp_path / "mlruns")
    raw["benchmark"].update(min_runs=10, min_seconds=0.0, warmup_runs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    metrics = tmp_path / "benchmark.json"
    calibration = tmp_path / "calibrate.json"
    host = {"peak_gmacs_fp32": 30.0, "peak_gmacs_int8": 20.0, "vector_efficiency": 0.4, "bandwidth_gbs": 50.0,
            "op_overhead_us": 0.2}  # fmt: skip
    calibration.write_text(json.dumps({"profile": host}))
    proc = run_without_frameworks(
        "from stages.benchmark import main\n"
        f"main(['--params', {str(tmp_path / 'params.yaml')!r}, '--models', {str(models)!r},"
        f" '--calibration', {str(calibration)!r}, '--metrics', {str(metrics)!r}])\n",
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads(metrics.read_text())["models"]["tiny_int8"]
    assert m["runs"] >= 10 and m["macs"] > 0 and m["memory_access_bytes"] > m["weight_bytes"] > 0
    assert set(m["predicted_latency_ms"]) == {"host", "cortex_a53", "cortex_a55", "cortex_a76"}
    assert m["predicted_latency_ms"]["cortex_a53"] > m["predicted_latency_ms"]["cortex_a76"]
    assert m["prediction_error_host"] == pytest.approx(m["predicted_latency_ms"]["host"] / m["latency_p50_ms"] - 1, abs=1e-3)
    assert m["windows"] == raw["benchmark"]["windows"] == len(m["latency_p50_windows_ms"])
    assert [op["index"] for op in m["ops"]] == list(range(len(m["ops"]))) and all(op["bound"] for op in m["ops"])


def test_measure_adds_the_host_check_only_with_a_host_profile(tiny_models):
    from pipelines.edge import measure

    host = {"peak_gmacs_fp32": 30.0, "peak_gmacs_int8": 20.0, "vector_efficiency": 0.4, "bandwidth_gbs": 50.0,
            "op_overhead_us": 0.2}  # fmt: skip
    fast = dict(warmup_runs=1, min_runs=10, min_seconds=0.0, windows=2)
    with_host = measure.measured_and_modelled(tiny_models["int8"], {"host": host, "slow": {**host, "bandwidth_gbs": 0.5}}, **fast)
    assert "host" not in with_host and set(with_host["predicted_latency_ms"]) == {"host", "slow"}
    assert with_host["predicted_latency_ms"]["slow"] > with_host["predicted_latency_ms"]["host"]
    assert sum(o["predicted_ms"] for o in with_host["ops"]) == pytest.approx(with_host["predicted_latency_ms"]["host"], rel=1e-3)
    assert with_host["macs"] == sum(o["macs"] for o in with_host["ops"]) > 0
    devices_only = measure.measured_and_modelled(tiny_models["int8"], {"slow": host}, **fast)
    assert "prediction_error_host" not in devices_only and "ops" not in devices_only
    assert devices_only["macs"] == with_host["macs"]


def test_bad_window_count_is_one_line_from_the_cli(tiny_models, capsys):
    from pipelines.cli import main

    assert main(["bench", str(tiny_models["fp32"]), "--windows", "0"]) == 2
    assert "windows must be >= 1, got 0" in capsys.readouterr().err


def test_edgesmith_bench_rejects_bad_file_with_one_line(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", str(bad)], capture_output=True,
                          text=True, env=run_env(), cwd=ROOT, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: not a TFLite model (no 'TFL3' flatbuffer identifier)"]


def test_one_p50_definition_for_both_pipelines_the_quietest_window():
    from pipelines.edge.bench import latency_stats
    from pipelines.graph.inference import latency_stats as per_round

    quiet, busy = np.array([1.0, 1.1, 1.2, 1.3]), np.array([2.0, 2.5, 3.0, 9.0])
    stats = latency_stats([busy, quiet])
    assert stats["latency_p50_ms"] == 1.15 and stats["latency_p50_windows_ms"] == [2.75, 1.15]
    assert stats["latency_p50_all_ms"] == float(np.median(np.concatenate([busy, quiet]))) and stats["runs"] == 8
    assert latency_stats([busy])["latency_p50_ms"] == float(np.median(busy))  # one window: the plain median
    # the graph benchmark's rounds are its windows: the same figures from the calls in round order
    assert per_round(np.concatenate([busy, quiet]), windows=2) == stats


def test_predict_names_the_top_classes_from_the_labels_beside_the_model(tmp_path, tiny_models, capsys):
    """`edgesmith predict` on image files: resized to the model's input, reduced to its one channel,
    top-k from labels.txt; no TensorFlow needed for it (the module imports only the runtime)."""
    from PIL import Image

    from pipelines import cli
    from pipelines.edge import evaluate, predict

    model = tmp_path / "m_int8.tflite"
    model.write_bytes(tiny_models["int8"].read_bytes())
    predict.write_labels(tmp_path, [f"bar {i}" for i in range(10)])
    x = tiny_models["x"]
    files = []
    for i in range(4):
        rgb = np.repeat(x[i], 3, axis=-1)  # an RGB file of a one-channel image, at twice the size
        Image.fromarray(rgb).resize((32, 32), Image.NEAREST).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    results = predict.predict(model, files, top=2)
    direct = evaluate.predict(model, x[:4]).argmax(-1)
    assert [r["top"][0]["class"] for r in results] == direct.tolist()
    assert all(r["top"][0]["name"] == f"bar {r['top'][0]['class']}" and len(r["top"]) == 2 for r in results)
    assert all(1 >= r["top"][0]["probability"] >= r["top"][1]["probability"] >= 0 for r in results)
    assert cli.main(["predict", str(model), files[0], "--top", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"{files[0]}: {results[0]['top'][0]['name']} {results[0]['top'][0]['probability']:.1%}"
    predict.write_labels(tmp_path, ["a", "b"])
    assert cli.main(["predict", str(model), files[0]]) == 2
    assert "labels.txt: 2 names for 10 classes" in capsys.readouterr().err
    assert cli.main(["predict", str(model), str(tmp_path / "missing.png")]) == 2


def test_predict_module_needs_no_tensorflow():
    code = ("import sys; import pipelines.edge.predict, pipelines.vision.data; "
            "sys.exit(1 if 'tensorflow' in sys.modules or 'torch' in sys.modules else 0)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_make_dataset_writes_any_shape(tmp_path):
    from pipelines import cli
    from pipelines.vision import data, synthetic

    assert cli.main(["make-dataset", str(tmp_path / "f"), "--classes", "3", "--size", "20", "--count", "30"]) == 0
    ds = data.prepare({"source": "folder", "path": str(tmp_path / "f"), "val_fraction": 0.1, "min_val_per_class": 0,
                       "test_fraction": 0.2, "color": "auto", "image_size": None, "class_names": None,
                       "max_train": 0, "max_test": 0}, seed=0)  # fmt: skip
    assert ds.x_train.shape[1:] == (20, 20, 3) and ds.class_names == sorted(synthetic.class_names(3))
    synthetic.write(tmp_path / "g.npz", "npz", 200, 100, 12, grayscale=True, test=100)
    with np.load(tmp_path / "g.npz") as z:
        assert z["x_train"].shape == (200, 12, 12, 1) and z["x_test"].shape == (100, 12, 12, 1)
        assert np.bincount(np.concatenate([z["y_train"], z["y_test"]])).tolist() == [3] * 100
        assert list(z["class_names"][:11]) == [*synthetic.class_names(100)[:11]] and z["class_names"][10] == "circle-1"
    a, _ = synthetic.make_images(5, 4, 16, seed=1)
    b, _ = synthetic.make_images(5, 4, 16, seed=1)
    assert np.array_equal(a, b) and a.std() > 10
    assert cli.main(["make-dataset", str(tmp_path / "h"), "--classes", "1"]) == 2
