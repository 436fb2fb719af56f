"""The graph stages on the quick profile, in a temporary copy of the project (slow).

`dvc repro profiles/quick/dvc.yaml:gnn_report` runs the graph pipeline alone; checks the report's
contract, the int8 exports (node student, graph classifier), the per-node and per-graph timing,
one MLflow run per stage plus the search's trials and the pipeline run holding the summary, and
that a second `dvc repro` has nothing to do. Then the same command on a user's own graphs with
only `graph_data.*` edited: a node-classification `.npz` alone, and a folder of graphs alone.
"""

from __future__ import annotations

import pytest
import yaml

from pipelines.common import io, report, tracking
from pipelines.edge import evaluate
from pipelines.graph import synthetic
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
            "student_int8", "gin", "gin_fp32", "gin_int8"} <= set(by)  # fmt: skip
    for m in doc["models"]:
        assert set(report.FIELDS) | {"dataset", "accuracy_std"} <= set(m)
        assert 0.0 <= m["accuracy"] <= 1.0
    assert by["gin"]["dataset"] == "MUTAG" and by["gcn"]["dataset"] == "Cora"
    assert by["gcn"]["accuracy"] > 0.5  # 2 seeds x 50 epochs already learn Cora
    assert doc["final"] in ("student_fp32", "student_int8") and doc["finals"]["graph"] in ("gin_fp32", "gin_int8")
    assert by["gcn"]["published_accuracy"] == 81.5 and by["gin"]["published_accuracy"] == 89.4
    assert by["searched"]["published_accuracy"] is None  # a figure belongs to its own model and dataset only
    gin = by["gin_int8"]
    assert evaluate.tensor_dtypes(quick / gin["file"])["inputs"] == ["int8", "int8", "int8"]
    assert gin["latency_p50_ms"] > 0 and "padded" in gin["latency_includes"] and gin["macs"] > 0
    assert gin["torch_accuracy"] == by["gin_fp32"]["accuracy"]  # fp32 file: PyTorch's answers

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
    assert set(doc["targets"]) >= {"gcn_accuracy", "gat_accuracy", "per_node_speedup", "gin_accuracy", "int8_drop",
                                   "gin_int8_drop"}  # fmt: skip
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


def _users_graph_run(tmp_path, **graph_data) -> tuple:
    """The quick profile with only graph_data.* edited, on files under a root of the user's own."""
    project = _copy_project(tmp_path / "project")
    quick = project / "profiles" / "quick"
    params = yaml.safe_load((quick / "params.yaml").read_text())
    params["graph_data"].update(root=str(tmp_path / "mine"), **graph_data)
    (quick / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = _dvc(project, "repro", "profiles/quick/dvc.yaml:gnn_report", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return quick, io.read_json(quick / "metrics" / "graph_report.json")


def test_users_node_npz_alone_runs_through_gnn_report(tmp_path):
    synthetic.write_node_npz(tmp_path / "mine" / "shop.npz", synthetic.node_graph(600, 4, 80, seed=0))
    quick, doc = _users_graph_run(tmp_path, node_dataset="shop.npz", graph_dataset=None)
    assert doc["datasets"] == {"node": "shop"} and set(doc["finals"]) == {"node"}
    assert {m["task"] for m in doc["models"]} == {"node"}
    by = {m["name"]: m for m in doc["models"]}
    assert by["student_int8"]["dtype"] == "int8" and by["student_int8"]["latency_p50_ms"] > 0
    assert evaluate.tensor_dtypes(quick / by["student_int8"]["file"])["inputs"] == ["int8"]
    assert all(m["published_accuracy"] is None for m in doc["models"])  # no published figure belongs to this graph
    assert not any(k.endswith("_accuracy") for k in doc["targets"])  # the Cora and MUTAG floors do not apply
    assert {"student_gap_to_teacher", "int8_drop", "pipeline_seconds"} <= set(doc["targets"])
    data = io.read_json(quick / "metrics" / "graph_data.json")
    assert data["node"]["nodes"] == 600 and data["node"]["train"] == 360 and "graph" not in data
    assert io.read_json(quick / "metrics" / "gnn_train.json")["graph"] == {}


def test_users_folder_of_graphs_alone_runs_through_gnn_report(tmp_path):
    synthetic.write_graph_folder(tmp_path / "mine" / "molecules", synthetic.motif_graphs(120, 3, seed=0))
    quick, doc = _users_graph_run(tmp_path, node_dataset=None, graph_dataset="molecules")
    assert doc["datasets"] == {"graph": "molecules"} and doc["final"] == doc["finals"]["graph"]
    assert {m["task"] for m in doc["models"]} == {"graph"}
    by = {m["name"]: m for m in doc["models"]}
    assert {"gin", "gin_fp32", "gin_int8"} <= set(by)
    assert by["gin_int8"]["latency_p50_ms"] > 0 and by["gin_int8"]["size_bytes"] < by["gin_fp32"]["size_bytes"]
    assert doc["graph_classifiers"]["gin"]["test_graphs"] == 12 and doc["graph_classifiers"]["gin"]["max_nodes"] > 0
    assert "gin_int8_drop" in doc["targets"] and "per_node_speedup" not in doc["targets"]
    assert io.read_json(quick / "metrics" / "gnn_search.json")["skipped"].startswith("graph_data.node_dataset is null")
    assert (quick / "plots" / "graph_report" / "accuracy_latency.png").is_file()
