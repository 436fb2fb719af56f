"""The graph stages on the quick profile, in a temporary copy of the project (slow).

`dvc repro profiles/quick/dvc.yaml:gnn_report` runs the graph pipeline alone; checks the report's
contract, the int8 export, the per-node timing, one MLflow run per stage plus the search's
trials and the pipeline run holding the summary, and that a second `dvc repro` has nothing to do.
"""

from __future__ import annotations

import pytest

from pipelines.common import io, report, tracking
from pipelines.edge import evaluate
from tests.test_pipeline import _copy_project, _dvc

pytestmark = pytest.mark.slow
GRAPH_STAGES = ["graph_data", "gnn_search", "gnn_train", "gnn_distill", "gnn_export", "gnn_benchmark", "gnn_report"]


def test_quick_graph_pipeline(tmp_path):
    project = _copy_project(tmp_path / "project")
    quick = project / "profiles" / "quick"
    done = _dvc(project, "repro", "profiles/quick/dvc.yaml:gnn_report", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in GRAPH_STAGES:
        assert f"Running stage 'profiles/quick/dvc.yaml:{stage}'" in done.stdout
    for vision in ("data", "teacher", "quantize", "benchmark"):
        assert f"Running stage 'profiles/quick/dvc.yaml:{vision}'" not in done.stdout

    doc = io.read_json(quick / "metrics" / "graph_report.json")
    assert doc["pipeline"] == "graph" and len(doc["git_commit"]) == 40
    assert doc["datasets"] == {"node": "Cora", "graph": "MUTAG"}
    by = {m["name"]: m for m in doc["models"]}
    assert {"gcn", "gat", "sage", "mlp", "searched", "student_transductive", "student_unseen", "student_fp32",
            "student_int8", "gin"} <= set(by)  # fmt: skip
    for m in doc["models"]:
        assert set(report.FIELDS) | {"dataset", "accuracy_std"} <= set(m)
        assert 0.0 <= m["accuracy"] <= 1.0
    assert by["gin"]["dataset"] == "MUTAG" and by["gcn"]["dataset"] == "Cora"
    assert by["gcn"]["accuracy"] > 0.5  # 2 seeds x 50 epochs already learn Cora
    assert doc["final"] in ("student_fp32", "student_int8")

    int8 = by["student_int8"]
    assert int8["dtype"] == "int8" and int8["size_bytes"] < by["student_fp32"]["size_bytes"] / 3
    assert int8["macs"] > 0 and int8["memory_access_bytes"] > 0 and set(int8["predicted_latency_ms"]) >= {"cortex_a53"}
    dtypes = evaluate.tensor_dtypes(quick / int8["file"])
    assert dtypes["inputs"] == dtypes["outputs"] == ["int8"]
    assert abs(by["student_fp32"]["accuracy"] - int8["accuracy"]) <= 0.02
    export = io.read_json(quick / "metrics" / "gnn_export.json")
    assert export["models"]["student_fp32"]["max_abs_logit_diff"] < 1e-3
    assert export["models"]["student_fp32"]["accuracy"] == export["models"]["student_fp32"]["torch_accuracy"]

    timing = doc["per_node_inference"]
    teacher = doc["teacher"]
    assert timing["timings"][teacher]["latency_p50_ms"] > timing["timings"]["student_int8"]["latency_p50_ms"] > 0
    assert timing["speedup_vs_int8_student"][teacher] > 1
    assert "neighbourhood fetch" in by[teacher]["latency_includes"]
    bench = io.read_json(quick / "metrics" / "gnn_benchmark.json")
    for name in ("gcn", "gat", "sage"):
        assert bench["per_node"]["models"][name]["subgraph_max_abs_logit_diff"] < 1e-4
    assert set(doc["targets"]) >= {"gcn_accuracy", "gat_accuracy", "per_node_speedup", "gin_accuracy", "int8_drop"}
    assert (quick / "plots" / "graph_report" / "accuracy_latency.png").stat().st_size > 10_000

    again = _dvc(project, "repro", "profiles/quick/dvc.yaml:gnn_report", timeout=600)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout

    runs = tracking.find_runs("edgesmith-graph-quick", project / "mlruns")
    names = sorted(r["name"] for r in runs)
    search = io.read_json(quick / "metrics" / "gnn_search.json")
    trials = [f"gnn_search/trial_{t['trial_id']}" for t in search["all_trials"]]
    (pipeline,) = [r for r in runs if r["tags"].get("edgesmith.pipeline_run") == "true"]  # holds the summary
    assert names == sorted([*GRAPH_STAGES, *trials, pipeline["name"]])
    assert pipeline["tags"]["edgesmith.summary"] == "true" and pipeline["tags"]["edgesmith.pipeline"] == "graph"
    search_run = next(r["run_id"] for r in runs if r["name"] == "gnn_search")
    for r in runs:
        if r is not pipeline:
            want = search_run if r["name"] in trials else pipeline["run_id"]
            assert r["tags"]["mlflow.parentRunId"] == want, r["name"]
    curves = [r for r in runs if r["name"] == "gnn_train"][0]["metrics"]
    assert "gcn/val_accuracy" in curves and "gcn/loss" in curves  # the last epoch's; every epoch is a step
    assert not tracking.find_runs("edgesmith-vision-quick", project / "mlruns")
