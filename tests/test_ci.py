"""The CI workflow, the CI entry point and the team make targets: valid, linted, and saying the same as the README."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "edgesmith.yml"
README = (ROOT / "README.md").read_text()


def _actionlint() -> str | None:
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.exists() else shutil.which("actionlint")


def test_workflow_is_valid_and_runs_the_readme_commands():
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps = doc["jobs"]["quick-pipeline"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert "bash .ci/pipeline profiles/quick" in runs
    assert "bash .ci/pipeline profiles/quick" in README
    assert doc["jobs"]["quick-pipeline"]["env"]["EDGESMITH_TARGET"] in README
    script = (ROOT / ".ci" / "pipeline").read_text()
    for command in ("dvc repro", "edgesmith report", "--markdown", "edgesmith check-budget"):
        assert command in script
    assert os.access(ROOT / ".ci" / "pipeline", os.X_OK)


def test_workflow_lints_and_tests_before_the_pipeline():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    runs = [s["run"] for s in jobs["lint-and-tests"]["steps"] if "run" in s]
    assert runs[0].startswith("make setup") and "make lint" in runs and "make test" in runs
    assert "make test" in README and jobs["quick-pipeline"]["needs"] == "lint-and-tests"


def test_workflow_passes_actionlint():
    tool = _actionlint()
    if tool is None:
        pytest.skip("actionlint not installed (requirements.txt installs it)")
    proc = subprocess.run([tool, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_scripts_are_valid_bash():
    for script in (".ci/pipeline", ".ci/run"):
        assert subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True).returncode == 0, script


def _make_n(*args: str) -> str:
    return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout


def test_make_exp_queues_one_experiment_per_value_and_runs_two_at_a_time():
    out = _make_n("exp", "PARAMS=teacher.epochs=1,2,3 teacher.dense_units=64", "PROFILE=profiles/quick")
    assert ("dvc exp run --queue --force profiles/quick/dvc.yaml:report -S 'profiles/quick/params.yaml:teacher.epochs=1,2,3' "
            "-S 'profiles/quick/params.yaml:teacher.dense_units=64'") in out  # fmt: skip
    assert "dvc queue start -j 2" in out
    assert "-S 'teacher.epochs=4,8'" in _make_n("exp", "PARAMS=teacher.epochs=4,8")
    bad = subprocess.run(["make", "exp"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "usage: make exp PARAMS=" in bad.stderr


def test_make_mlflow_server_serves_the_project_store():
    out = _make_n("mlflow-server", "MLFLOW_PORT=5077")
    assert "mlflow server --backend-store-uri sqlite:///" in out and "/mlruns/mlflow.db" in out
    assert "--artifacts-destination" in out and "/mlruns/artifacts" in out and "--host 127.0.0.1 --port 5077" in out


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    for target in ("exp", "mlflow-server", "test-slow", "lint", "ui", "report", "push", "pull"):
        assert f" {target} " in out.replace("\x1b[36m", " ").replace("\x1b[0m", " ")
