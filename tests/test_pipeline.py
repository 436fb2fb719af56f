"""The real pipeline on the quick profile, in a temporary copy of the project (slow).

One run serves every check here: a real MLflow server is started with `make mlflow-server`
on a free port and the whole quick pipeline (vision and graph stages) logs to it; `kill -9`
hits each long stage halfway, one `dvc repro` after another, and a last `dvc repro` finishes
the work; then the server is stopped and its database must hold exactly one run per stage.
Also checked: no half-written output under its final name after each kill, the report's
contract, int8 tensors in the int8 file, a second `dvc repro` has nothing to do, the budget
check and the Markdown summary.

The stages killed halfway: teacher, search, distill, quantize, calibration_suite, gnn_search,
gnn_train, gnn_distill; the teacher must resume after its kept epoch and distill keep its finished
student, and no finished stage runs twice. The Markdown summary carries kd_gain.
`benchmarks/kd_probe.py` runs on the run's outputs: the recorded baselines are used when the
training settings match, trained again when they do not, and bad `--set` values are refused.
With the rest of `make test-slow` (the graph pipeline alone, the teacher twice, the search end to
end) it took about 15 minutes on 2 cores.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.common import io, report, tracking
from pipelines.common.params import profile_params
from pipelines.edge import evaluate
from pipelines.vision.data import Dataset
from tests.conftest import ROOT, run_env

pytestmark = pytest.mark.slow
STAGES = ["data", "search", "teacher", "distill", "prune", "quantize", "calibration_suite", "calibrate", "benchmark", "arm_cost", "device_bench", "report"]
CHAIN = ["teacher_fp32", "teacher_int8", "student_baseline_int8", "student_kd_int8", "student_pruned_int8"]
GRAPH_STAGES = ["graph_data", "gnn_search", "gnn_train", "gnn_distill", "gnn_export", "gnn_benchmark", "gnn_report"]
# Each long stage is killed once a line of its own output shows it is halfway; its outputs must then be absent.
# In the order `dvc repro` runs them (teacher before its sibling search): a stage that finished before an
# earlier kill would not run again to be killed.
KILLS = {
    "teacher": (r"teacher: epoch 1 of \d+ kept", ["models/teacher.keras"]),  # resumes after epoch 1
    "search": (r"search: trial \S+ .*-> val accuracy", ["models/student_arch.json"]),  # after its first trial
    "distill": (r"distill: seed \d+, \w+ student: test accuracy", ["models/students"]),  # keeps that student
    "quantize": (r"quantize: teacher_fp32 accuracy", ["models/tflite"]),
    "calibration_suite": (r"calibration_suite: \w+ \(\d+ parameters\)", ["models/calibration"]),
    "gnn_search": (r"gnn_search: trial \S+ ", ["models/graph/search.json"]),  # the first of 3 trials (below)
    "gnn_train": (r"gnn_train: \w+ seed \d+: test", ["models/graph/gnn"]),
    "gnn_distill": (r"gnn_distill: \w+ student, teacher", ["models/graph/student"]),
}


def _copy_project(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    outputs = re.compile(r"^(profiles/[^/]+/)?(metrics|plots)/")  # a local run's results are not source
    for f in files:
        src = ROOT / f
        if (src.is_symlink() or src.is_file()) and not outputs.match(f):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst / f)
            else:
                shutil.copy2(src, dst / f)
    (dst / "profiles/quick/dvc.lock").unlink(missing_ok=True)
    shared = ROOT.parent / "shared"  # graph_data.root leaves the project: ../shared/datasets
    if shared.is_dir() and not (dst.parent / "shared").exists():
        os.symlink(shared, dst.parent / "shared")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@localhost"],
                ["git", "config", "user.name", "t"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):  # fmt: skip
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


def project_env(project: Path, **extra: str) -> dict:
    """The stages of the copy run the copy's code (not an installed edgesmith's)."""
    return {**run_env(), "PYTHONPATH": str(project), **extra}


def _dvc(project: Path, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    dvc = str(Path(sys.executable).parent / "dvc")
    return subprocess.run([dvc, *args], cwd=project, capture_output=True, text=True,
                          env=env or project_env(project), **kw)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(project: Path, port: int, log: Path) -> subprocess.Popen:
    bin_dir = str(Path(sys.executable).parent)
    proc = subprocess.Popen(["make", "mlflow-server", f"BIN={bin_dir}", f"MLFLOW_PORT={port}"], cwd=project,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=run_env(),
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read() == b"OK":
                return proc
        except OSError:
            time.sleep(1)
    raise AssertionError("mlflow server did not answer in 180 s:\n" + log.read_text())


def _kill_halfway(project: Path, stage: str, pattern: str, env: dict, log: Path) -> str:
    """Run `dvc repro` until `stage` prints `pattern`, then kill -9 the whole process group."""
    dvc = str(Path(sys.executable).parent / "dvc")
    with open(log, "w") as out:
        proc = subprocess.Popen([dvc, "repro", "profiles/quick/dvc.yaml"], cwd=project, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
        started = f"Running stage 'profiles/quick/dvc.yaml:{stage}'"
        deadline = time.time() + 1200
        while time.time() < deadline:
            text = log.read_text()
            if started in text and re.search(pattern, text.split(started, 1)[1]):
                break
            assert proc.poll() is None, f"dvc repro ended before {stage} was halfway:\n{text[-3000:]}"
            time.sleep(0.1)
        else:
            raise AssertionError(f"{stage} not halfway after 20 min")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return log.read_text()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """The quick pipeline against a real MLflow server, with kill -9 in each long stage first."""
    tmp = tmp_path_factory.mktemp("pipeline")
    project = _copy_project(tmp / "project")
    quick = project / "profiles" / "quick"
    # A third GNN search trial, so that the kill after the first one's line still finds the search
    # running (a trial rejected by the limits ends at once); set in the profile's overrides, as a user would.
    overrides = yaml.safe_load((quick / "overrides.yaml").read_text())
    overrides["gnn_search"]["max_trials"] = 3
    (quick / "overrides.yaml").write_text(yaml.safe_dump(overrides, sort_keys=False))
    (quick / "params.yaml").write_text(profile_params(quick, project / "params.yaml"))
    assert yaml.safe_load((quick / "params.yaml").read_text())["gnn_search"]["max_trials"] == 3
    port = _free_port()
    server = _start_server(project, port, tmp / "server.log")
    env = project_env(project, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
    killed: dict[str, dict] = {}
    try:
        for stage, (pattern, outs) in KILLS.items():
            text = _kill_halfway(project, stage, pattern, env, tmp / f"kill_{stage}.log")
            killed[stage] = {
                "log": text,
                "outs_after_kill": {o: (quick / o).exists() for o in outs},
                "metrics_after_kill": (quick / "metrics" / f"{stage}.json").exists(),
            }
            if stage == "teacher":
                Dataset.load(quick / "data" / "dataset.npz")  # the stage finished before the kill is whole
        final = _dvc(project, "repro", "profiles/quick/dvc.yaml", env=env, timeout=2400)
        again = _dvc(project, "repro", "profiles/quick/dvc.yaml", env=env, timeout=600)
        status = _dvc(project, "status", "profiles/quick/dvc.yaml", env=env, timeout=120)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
    return {"project": project, "quick": quick, "killed": killed, "final": final, "again": again,
            "status": status, "port": port}  # fmt: skip


def _ran(text: str) -> list[str]:
    return re.findall(r"Running stage 'profiles/quick/dvc.yaml:(\w+)'", text)


def test_a_stage_killed_halfway_leaves_nothing_under_its_final_name_and_dvc_repro_finishes(run):
    """Each `dvc repro` after a kill starts with the killed stage and never re-runs a finished one."""
    quick, final = run["quick"], run["final"]
    for stage, k in run["killed"].items():
        assert not any(k["outs_after_kill"].values()), (stage, k["outs_after_kill"])
        assert not k["metrics_after_kill"], stage
    assert final.returncode == 0, final.stdout[-5000:] + final.stderr[-3000:]
    attempts = [_ran(k["log"]) for k in run["killed"].values()] + [_ran(final.stdout)]
    for i, killed in enumerate(run["killed"]):
        assert attempts[i][-1] == killed and attempts[i + 1][0] == killed, attempts
    started = [s for a in attempts for s in a]
    assert sorted(started) == sorted([*STAGES, *GRAPH_STAGES, *KILLS]), attempts  # killed ones twice, others once
    for stage, (_, outs) in KILLS.items():
        for o in outs:
            assert (quick / o).exists(), o
        assert (quick / "metrics" / f"{stage}.json").is_file()
    assert not [p for p in quick.rglob(io.TMP_PREFIX + "*") if "models" in p.parts or "data" in p.parts]


def test_killed_teacher_and_distill_go_on_from_their_finished_work(run):
    """The `dvc repro` after a stage's kill (that of the next kill, or the last one) picks up its work."""
    logs = [k["log"] for k in run["killed"].values()] + [run["final"].stdout + run["final"].stderr]
    after = dict(zip(run["killed"], logs[1:], strict=True))
    assert re.search(r"teacher: resuming after epoch 1 of \d+", after["teacher"]), after["teacher"][-5000:]
    assert re.search(r"distill: [12] of 2 students finished before, kept", after["distill"]), after["distill"][-5000:]
    assert io.read_json(run["quick"] / "metrics" / "teacher.json")["resumed_after_epoch"] == 1
    for stage in ("teacher", "distill"):  # what was kept goes when the stage ends
        assert not list((run["quick"] / ".state" / stage).rglob("*")), stage


def test_second_repro_has_nothing_to_do(run):
    again, status = run["again"], run["status"]
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "up to date" in status.stdout, status.stdout


def test_every_stage_run_is_on_the_server_once(run):
    """The server is stopped: its database must hold one pipeline run per experiment with one run per
    finished stage nested in it (none for a killed attempt), the search trials under the search."""
    project, quick = run["project"], run["quick"]
    vision = tracking.find_runs("edgesmith-vision-quick", project / "mlruns")
    csv = (quick / "plots" / "search" / "trials.csv").read_text().splitlines()[1:]
    trials = [f"search/trial_{line.split(',')[0]}" for line in csv]
    (parent,) = [r for r in vision if r["tags"].get("edgesmith.pipeline_run") == "true"]
    assert sorted(r["name"] for r in vision) == sorted([*STAGES, *trials, parent["name"]])
    by_name = {r["name"]: r for r in vision}
    for r in vision:
        if r is not parent:
            want = by_name["search"]["run_id"] if r["name"].startswith("search/") else parent["run_id"]
            assert r["tags"]["mlflow.parentRunId"] == want, r["name"]
    graph = tracking.find_runs("edgesmith-graph-quick", project / "mlruns")
    search = io.read_json(quick / "metrics" / "gnn_search.json")
    trials = [f"gnn_search/trial_{t['trial_id']}" for t in search["all_trials"]]
    (graph_parent,) = [r for r in graph if r["tags"].get("edgesmith.pipeline_run") == "true"]
    assert sorted(r["name"] for r in graph) == sorted([*GRAPH_STAGES, *trials, graph_parent["name"]])
    for r in vision + graph:
        assert r["tags"]["edgesmith.params_file"] == "params.yaml"
        assert r["tags"]["mlflow.source.git.commit"] == parent["tags"]["mlflow.source.git.commit"]
    teacher = by_name["teacher"]
    assert teacher["tags"]["mlflow.source.name"] == "stages/teacher.py"
    assert teacher["metrics"]["test_accuracy"] == io.read_json(quick / "metrics" / "teacher.json")["test_accuracy"]
    summary = parent  # the report's summary lives on the pipeline run
    assert summary["tags"]["edgesmith.summary"] == "true"
    doc = io.read_json(quick / "metrics" / "report.json")
    int8 = next(m for m in doc["models"] if m["name"] == "teacher_int8")
    assert summary["metrics"]["teacher_int8.accuracy"] == pytest.approx(int8["accuracy"])
    assert np.isfinite(summary["metrics"]["teacher_fp32.latency_p50_ms"])
    assert summary["artifact_uri"].startswith("mlflow-artifacts:")  # uploaded through the server
    stored = list((project / "mlruns" / "artifacts").rglob("report.json"))
    assert stored and io.read_json(stored[0])["final"] == doc["final"]
    assert not (project / "mlruns" / "outbox").exists()  # nothing had to be kept for later


def test_models_datasets_curves_and_the_registered_final_model_on_the_server(run):
    """Every .tflite file a logged model with the report's figures, the Keras models with the
    TensorFlow flavour, the dataset's splits as inputs, per-epoch curves, and the final model
    registered with @candidate (within budget, as check-budget says below)."""
    from mlflow import MlflowClient

    project, quick = run["project"], run["quick"]
    c = MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("edgesmith-vision-quick")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    logged = {m.name: m for m in c.search_logged_models([exp.experiment_id])}
    doc = io.read_json(quick / "metrics" / "report.json")
    assert {m["name"] for m in doc["models"]} | {"teacher", "student_baseline", "student_kd", "student_pruned"} == set(logged)
    final = logged[doc["final"]]
    figures = {m.key: m.value for m in c.get_logged_model(final.model_id).metrics}
    row = io.read_json(quick / "metrics" / "summary.json")["final_model"]
    assert figures["accuracy"] == pytest.approx(row["accuracy"]) and figures["size_bytes"] == row["size_bytes"]
    assert figures["latency_p50_ms"] == pytest.approx(row["latency_p50_ms"]) and figures["memory_access_bytes"] > 0
    version = c.get_model_version_by_alias("edgesmith-vision-quick", "candidate")
    assert version.source == f"models:/{final.model_id}" and version.tags["edgesmith.model"] == doc["final"]
    runs = {r["name"]: r for r in tracking.find_runs("edgesmith-vision-quick", project / "mlruns")}
    assert version.run_id == runs["quantize"]["run_id"]
    inputs = {i.tags[0].value: i.dataset for i in c.get_run(runs["teacher"]["run_id"]).inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "train", "validation"] and {d.name for d in inputs.values()} == {"fashion-mnist"}
    epochs = io.read_json(quick / "metrics" / "teacher.json")["epochs"]
    curve = c.get_metric_history(runs["teacher"]["run_id"], "teacher/val_accuracy")
    assert [m.step for m in curve] == list(range(1, epochs + 1))
    history = (quick / "plots" / "teacher_history.csv").read_text().splitlines()
    column = history[0].split(",").index("val_accuracy")
    assert [m.value for m in curve] == pytest.approx([float(line.split(",")[column]) for line in history[1:]], abs=1e-6)


def test_dvc_metrics_and_exp_show_list_the_final_models_figures(run):
    """DVC's tables drop lists: the summaries are nested dicts they can read."""
    project, quick = run["project"], run["quick"]
    import json

    shown = json.loads(_dvc(project, "metrics", "show", "--json", timeout=300).stdout)
    files = next(iter(shown.values()))["data"]  # the workspace's (its key is "")
    summary = files["profiles/quick/metrics/summary.json"]["data"]
    doc = io.read_json(quick / "metrics" / "report.json")
    final = next(m for m in doc["models"] if m["name"] == doc["final"])
    assert summary["final_model"]["name"] == doc["final"]
    for figure in ("accuracy", "size_bytes", "latency_p50_ms"):
        assert summary["final_model"][figure] == final[figure]
        assert summary["by_model"]["teacher_int8"][figure] is not None
    assert "profiles/quick/metrics/graph_summary.json" in files
    assert not [f for f in files if f.endswith(("report.json", "calibrate.json"))]  # the tables stay readable
    table = _dvc(project, "exp", "show", "--json", timeout=300)
    assert table.returncode == 0, table.stderr
    workspace = next(e for e in json.loads(table.stdout) if e["rev"] == "workspace")
    metrics = workspace["data"]["metrics"]["profiles/quick/metrics/summary.json"]["data"]
    assert metrics["final_model"]["accuracy"] == final["accuracy"]
    drawn = json.loads(_dvc(project, "plots", "show", "--json", timeout=300).stdout)
    drawn = drawn if "data" in drawn else {"data": drawn}  # {"errors", "data"} only when some plot failed
    ours = {k: v for k, v in drawn["data"].items() if k.startswith("profiles/quick/")}
    assert not [e for e in drawn.get("errors", []) if e["name"].startswith("profiles/quick/")]
    pngs = [k for k, v in ours.items() if v[0]["type"] == "image"]
    charts = [k for k, v in ours.items() if v[0]["type"] == "vega"]
    assert len(pngs) == 6 and all(k.endswith(".png") for k in pngs)  # each PNG once
    assert len(charts) == 6 and all("dvc.yaml::" in k for k in charts)  # only the declared charts: no CSV twice


def test_report_contract_and_int8_file(run):
    quick = run["quick"]
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


def test_check_budget_and_markdown_on_the_real_report(run):
    project, quick = run["project"], run["quick"]
    cli = [sys.executable, "-m", "pipelines.cli"]
    ok = subprocess.run([*cli, "check-budget", "--params", "profiles/quick/params.yaml"], cwd=project,
                        capture_output=True, text=True, env=project_env(project), timeout=120)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.strip().endswith("within budget"), ok.stdout + ok.stderr
    strict = quick / "strict.yaml"
    raw = yaml.safe_load((quick / "params.yaml").read_text())
    raw["budget"]["min_accuracy"] = 0.99
    strict.write_text(yaml.safe_dump(raw, sort_keys=False))
    over = subprocess.run([*cli, "check-budget", "--params", str(strict)], cwd=project, capture_output=True,
                          text=True, env=project_env(project), timeout=120)  # fmt: skip
    assert over.returncode == 1 and "FAIL  accuracy" in over.stdout and ">= 99.00%" in over.stdout
    md = subprocess.run([*cli, "report", "profiles/quick/metrics/report.json", "--markdown", "--params",
                         "profiles/quick/params.yaml"], cwd=project, capture_output=True, text=True,
                        env=project_env(project), timeout=120)  # fmt: skip
    final = io.read_json(quick / "metrics" / "report.json")["final"]
    assert md.returncode == 0 and "Budget: within budget" in md.stdout, md.stdout + md.stderr
    assert f"final model: **`{final}`**" in md.stdout and f"| **{final}** |" in md.stdout, md.stdout
    gain = io.read_json(quick / "metrics" / "distill.json")["kd_gain_points"]
    assert f"kd_gain **{gain['mean']:+.2f}** points" in md.stdout, md.stdout
    assert ("95 % CI" in md.stdout) == (gain["n"] > 1), md.stdout  # one seed has no interval


def test_kd_probe_trains_distilled_students_against_the_recorded_baselines(run):
    project, quick = run["project"], run["quick"]
    recorded = io.read_json(quick / "metrics" / "distill.json")
    out = quick / "probe.json"

    def probe(*sets: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "benchmarks/kd_probe.py", "--params", "profiles/quick/params.yaml",
                               "--json", str(out), "--set", "workers=1", *sets], cwd=project, capture_output=True,
                              text=True, env=project_env(project), timeout=900)  # fmt: skip

    same_training = probe("temperature=2", "alpha=0.7")
    assert same_training.returncode == 0, same_training.stdout + same_training.stderr
    doc = io.read_json(out)
    assert doc["baselines_trained"] is False and (doc["loss"]["temperature"], doc["loss"]["alpha"]) == (2.0, 0.7)
    assert [r["seed"] for r in doc["runs"]] == recorded["seeds"]
    for row, old in zip(doc["runs"], recorded["runs"], strict=True):
        assert row["baseline_accuracy"] == old["baseline_accuracy"] and 0.0 < row["kd_accuracy"] <= 1.0
        assert row["kd_gain_points"] == pytest.approx((row["kd_accuracy"] - row["baseline_accuracy"]) * 100, abs=1e-3)
    assert f"gain {doc['runs'][0]['kd_gain_points']:+.2f} points" in same_training.stdout
    # other epochs: the recorded baselines no longer compare, so they are trained again
    other_training = probe("epochs=1")
    assert other_training.returncode == 0, other_training.stdout + other_training.stderr
    assert io.read_json(out)["baselines_trained"] is True
    for bad, message in (("alpha=2", "distill.alpha must be"), ("alhpa=0.5", "expected KEY=VALUE, KEY a distill key")):
        refused = probe(bad)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr



def test_a_second_clone_pulls_the_outputs_from_the_remote_instead_of_running(run):
    """`make push` to a local-folder DVC remote; a fresh clone's `make pull` gets the models and
    plots, and then `dvc status` is clean and `dvc repro` has nothing to run."""
    project = run["project"]
    bin_dir = Path(sys.executable).parent

    def sh(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=project_env(cwd), timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    sh(str(bin_dir / "dvc"), "remote", "add", "-d", "shared", str(project.parent / "remote"), cwd=project)
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "a pipeline run: dvc.lock, metrics, the remote", cwd=project)
    sh("make", "push", f"BIN={bin_dir}", "TARGETS=profiles/quick/dvc.yaml", cwd=project)  # the full pipeline never ran here
    clone = project.parent / "clone"  # beside the project: graph_data.root is ../shared/datasets
    sh("git", "clone", "-q", str(project), str(clone), cwd=project.parent)
    assert not (clone / "profiles/quick/models").exists()
    sh("make", "pull", f"BIN={bin_dir}", "TARGETS=profiles/quick/dvc.yaml", cwd=clone)
    final = io.read_json(clone / "profiles/quick/metrics/report.json")["final"]
    for f in (f"models/tflite/{final}.tflite", "models/teacher.keras", "plots/report/accuracy_latency.png"):
        assert (clone / "profiles/quick" / f).read_bytes() == (run["quick"] / f).read_bytes(), f
    status = sh(str(bin_dir / "dvc"), "status", "profiles/quick/dvc.yaml", cwd=clone)
    assert "up to date" in status.stdout, status.stdout
    again = sh(str(bin_dir / "dvc"), "repro", "profiles/quick/dvc.yaml", cwd=clone)
    assert "Running stage" not in again.stdout, again.stdout
