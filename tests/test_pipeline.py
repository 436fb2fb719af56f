"""The real pipeline on the quick profile, in a temporary copy of the project (slow).

Covers: a `kill -9` halfway through training leaves no half-written output and the next
`dvc repro` finishes; the report's contract; int8 tensors in the int8 file; a second
`dvc repro` has nothing to do; one MLflow run per stage plus the summary run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.common import io, report, tracking
from pipelines.edge import evaluate
from pipelines.vision.data import Dataset
from tests.conftest import ROOT, run_env

pytestmark = pytest.mark.slow
STAGES = ["data", "teacher", "distill", "prune", "quantize", "calibration_suite", "calibrate", "benchmark", "report"]
CHAIN = ["teacher_fp32", "teacher_int8", "student_baseline_int8", "student_kd_int8", "student_pruned_int8"]


def _copy_project(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    for f in files:
        src = ROOT / f
        if src.is_symlink() or src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst / f)
            else:
                shutil.copy2(src, dst / f)
    (dst / "profiles/quick/dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@localhost"],
                ["git", "config", "user.name", "t"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):  # fmt: skip
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


def _dvc(project: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    dvc = str(Path(sys.executable).parent / "dvc")
    return subprocess.run([dvc, *args], cwd=project, capture_output=True, text=True, env=run_env(), **kw)


def test_quick_pipeline_survives_kill_9_and_is_reproducible(tmp_path):
    project = _copy_project(tmp_path / "project")
    quick = project / "profiles" / "quick"
    dvc = str(Path(sys.executable).parent / "dvc")
    log = open(tmp_path / "first.log", "w+")
    proc = subprocess.Popen([dvc, "repro", "profiles/quick/dvc.yaml"], cwd=project, stdout=log,
                            stderr=subprocess.STDOUT, env=run_env(), start_new_session=True)  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline and "epoch 1/" not in (tmp_path / "first.log").read_text():
        assert proc.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (quick / "models" / "teacher.keras").exists()
    Dataset.load(quick / "data" / "dataset.npz")  # the finished stage's output is whole

    done = _dvc(project, "repro", "profiles/quick/dvc.yaml", timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'profiles/quick/dvc.yaml:teacher'" in done.stdout
    assert "Running stage 'profiles/quick/dvc.yaml:data'" not in done.stdout  # finished before the kill

    doc = io.read_json(quick / "metrics" / "report.json")
    assert doc["pipeline"] == "vision" and len(doc["git_commit"]) == 40
    names = [m["name"] for m in doc["models"]]
    assert set(CHAIN) <= set(names) and doc["final"] in names
    for m in doc["models"]:
        assert set(report.FIELDS) <= set(m)
        assert m["threads"] == 1 and m["latency_p50_ms"] > 0 and m["init_ms"] > 0
        assert 0 < m["peak_activation_bytes"] < m["memory_access_bytes"]
        assert set(m["predicted_latency_ms"]) == {"host", "cortex_a53", "cortex_a55", "cortex_a76"}
        assert isinstance(m["within_budget"], bool)
    by_name = {m["name"]: m for m in doc["models"]}
    fp32, int8 = by_name["teacher_fp32"], by_name["teacher_int8"]
    for m in (fp32, int8):
        assert m["macs"] > 1e6 and m["params"] > 1e5 and m["memory_access_bytes"] > m["size_bytes"] / 2
        assert abs(m["prediction_error_host"]) < 1.0
    assert by_name["student_kd_int8"]["size_bytes"] < int8["size_bytes"] / 10
    chain = doc["compression_chain"]
    assert [s["name"] for s in chain["waterfall"]][:4] == [
        "teacher_fp32",
        "student_baseline_fp32",
        "student_kd_fp32",
        "student_pruned_fp32",
    ]
    assert chain["prune"]["sparsity"] > 0.4 and chain["distill"]["seeds"] == [42]
    assert doc["cost_model"]["calibration_fit"]["within_tolerance"] is not None
    assert int8["dtype"] == "int8" and fp32["dtype"] == "float32"
    assert 3.5 < fp32["size_bytes"] / int8["size_bytes"] < 4.5
    assert abs(fp32["accuracy"] - int8["accuracy"]) <= 0.01
    dtypes = evaluate.tensor_dtypes(quick / int8["file"])
    assert dtypes["inputs"] == dtypes["outputs"] == ["int8"] and "float32" not in dtypes["tensors"]
    ds = Dataset.load(quick / "data" / "dataset.npz")
    assert evaluate.accuracy(quick / int8["file"], ds.x_test, ds.y_test) == pytest.approx(int8["accuracy"])
    for png in ("accuracy_latency.png", "accuracy_memory_access.png", "final_ops.png", "waterfall.png"):
        assert (quick / "plots" / "report" / png).stat().st_size > 10_000
    assert not [p for p in quick.rglob(io.TMP_PREFIX + "*") if "models" in p.parts or "data" in p.parts]

    again = _dvc(project, "repro", "profiles/quick/dvc.yaml", timeout=600)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    status = _dvc(project, "status", "profiles/quick/dvc.yaml", timeout=120)
    assert "up to date" in status.stdout, status.stdout

    runs = tracking.find_runs("edgesmith-vision-quick", project / "mlruns")
    finished = [r["name"] for r in runs]
    assert sorted(finished) == sorted([*STAGES, "summary"])  # the killed teacher run logged nothing
    summary = next(r for r in runs if r["name"] == "summary")
    assert summary["metrics"]["teacher_int8.accuracy"] == pytest.approx(int8["accuracy"])
    assert np.isfinite(summary["metrics"]["teacher_fp32.latency_p50_ms"])
