"""The `edgesmith` command: doctor (the stack's versions, one line per problem), report without a
report, analyze and calibrate."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.conftest import ROOT, run_env


def _doctor(params) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "doctor", "--params", str(params)],
                          capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=180)  # fmt: skip


def test_doctor_reports_stack_and_each_problem(tmp_path, idx_dir):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = str(tmp_path / "mlruns")
    raw["data"]["path"] = str(idx_dir)
    good = tmp_path / "params.yaml"
    good.write_text(yaml.safe_dump(raw))
    proc = _doctor(good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ok   keras flavour" in out and "tf-keras 2.21" in out
    assert "ok   tflite runtime         ai-edge-litert" in out
    assert "ok   dataset" in out and "4 idx files" in out
    assert "ok   tracking" in out and "answers" in out
    assert "cores" in out

    raw["data"]["path"] = str(tmp_path / "missing")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = _doctor(bad)
    assert proc.returncode == 1
    assert "BAD  dataset" in proc.stdout and "1 problem(s)" in proc.stdout


def test_report_without_a_report_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'r.json'}: no report yet; run `make repro` (or `dvc repro`) first"


def test_analyze_and_calibrate_commands(tiny_models, tmp_path, capsys):
    import json
    import shutil

    from pipelines.cli import main

    assert main(["analyze", str(tiny_models["int8"]), "--json", str(tmp_path / "a.json")]) == 0
    table = capsys.readouterr().out
    assert "CONV_2D" in table and "DEPTHWISE_CONV_2D" in table and "FULLY_CONNECTED" in table
    analysis = json.loads((tmp_path / "a.json").read_text())
    assert analysis["totals"]["macs"] == sum(op["macs"] for op in analysis["ops"]) > 0

    suite = tmp_path / "suite"
    suite.mkdir()
    for i in range(2):
        shutil.copy(tiny_models["fp32"], suite / f"m{i}_fp32.tflite")
        shutil.copy(tiny_models["int8"], suite / f"m{i}_int8.tflite")
    rc = main(["calibrate", str(suite), "--runs", "20", "--min-seconds", "0", "--json", str(tmp_path / "c.json")])
    assert rc == 0
    result = json.loads((tmp_path / "c.json").read_text())
    assert set(result["profile"]) == {"peak_gmacs_fp32", "peak_gmacs_int8", "vector_efficiency", "bandwidth_gbs",
                                      "op_overhead_us", "min_depth_fp32", "min_depth_int8"}  # fmt: skip
    assert set(result["fit"]["models"]) == {"m0_fp32", "m0_int8", "m1_fp32", "m1_int8"}
    assert "fit: median |error|" in capsys.readouterr().out
    (suite / "m0_fp32.tflite").unlink()
    (suite / "m1_fp32.tflite").unlink()
    assert main(["calibrate", str(suite)]) == 2
    assert "calibration needs at least 4 .tflite files, found 2" in capsys.readouterr().err
