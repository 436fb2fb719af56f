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
