"""The `edgesmith` command: doctor and report."""

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
