"""Tracking: runs land in the store with tags, params and metrics; an unreachable store only warns.

Covered: the fallback (an unreachable, locked or broken store warns once, naming the run, and the
stage succeeds); a SQLite store locked by another process (the run is kept in the outbox and
`edgesmith sync` logs it once); retries waiting out a real SQLite lock; a retry after a half-logged
run completing it instead of logging a second one; two processes logging to one fresh store at once
(no run lost or doubled); a queued DVC experiment logging to the project's own store.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.common import io, tracking
from pipelines.common.stage import Stage
from tests.conftest import ROOT, run_env


def _params(tmp_path, mlruns="mlruns") -> str:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = mlruns
    raw["base"]["experiment"] = "test-exp"
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def _stage_runs(experiment: str, store) -> list[dict]:
    """The stage runs of an experiment, without the pipeline runs they nest under."""
    return [r for r in tracking.find_runs(experiment, store) if r["tags"].get("edgesmith.pipeline_run") != "true"]


def test_stage_run_is_logged_with_tags_params_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    data = tmp_path / "input.bin"
    data.write_bytes(b"abc")
    with Stage("quantize", _params(tmp_path), sections=["quantize"], inputs={"data": data}) as st:
        run_id = st.finish({"accuracy": 0.9, "nested": {"size": 3}, "label": "x"}, tmp_path / "metrics" / "q.json")
    assert run_id
    runs = _stage_runs("test-exp", tmp_path / "mlruns")
    assert [r["name"] for r in runs] == ["quantize"]
    run = runs[0]
    assert run["metrics"]["accuracy"] == 0.9 and run["metrics"]["nested.size"] == 3
    assert run["params"]["quantize.representative_samples"] == "500"
    assert run["tags"]["edgesmith.stage"] == "quantize"
    assert len(run["tags"]["edgesmith.params_hash"]) == 16
    assert run["tags"]["input.data.sha256"] == "ba7816bf8f01cfea"  # sha256("abc")
    assert "mlflow.source.git.commit" in run["tags"]
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert run["artifact_uri"].startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    assert (tmp_path / "metrics" / "q.json").is_file()


def test_unreachable_server_warns_once_and_the_stage_succeeds(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(tracking.ENV_URI, "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    caplog.set_level(logging.WARNING)
    t0 = time.time()
    with Stage("report", _params(tmp_path), sections=["report"]) as st:
        run_id = st.finish({"accuracy": 0.5}, tmp_path / "metrics" / "r.json")
    assert run_id is None
    assert time.time() - t0 < 60
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "tracking:" in r.getMessage()]
    assert len(warnings) == 1
    assert "was not logged to http://127.0.0.1:9" in warnings[0].getMessage()
    assert (tmp_path / "metrics" / "r.json").is_file()


def test_locked_or_broken_store_only_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"this is not a sqlite database" * 100)
    caplog.set_level(logging.WARNING)
    with Stage("data", _params(tmp_path), sections=["data"]) as st:
        assert st.finish({"n": 1}, tmp_path / "metrics" / "d.json") is None
    assert any("tracking:" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "metrics" / "d.json").is_file()


def test_tracking_uri_env_overrides_default(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.ENV_URI, "sqlite:////elsewhere/x.db")
    assert tracking.store_uris(tmp_path)[0] == "sqlite:////elsewhere/x.db"
    monkeypatch.delenv(tracking.ENV_URI)
    uri, artifacts = tracking.store_uris(tmp_path / "mlruns")
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert artifacts.endswith("/mlruns/artifacts")


def test_a_section_with_its_own_experiment_sends_the_stage_run_there(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    params = _params(tmp_path)
    with Stage("graph_data", params, sections=["graph", "graph_data"]) as st:
        graph_experiment = st.params["graph"]["experiment"]
        assert st.experiment == graph_experiment != "test-exp"
        st.finish({"n": 1}, tmp_path / "metrics" / "g.json")
    with Stage("data", params, sections=["data"]) as st:
        assert st.experiment == "test-exp"
    assert [r["name"] for r in _stage_runs(graph_experiment, tmp_path / "mlruns")] == ["graph_data"]
    assert _stage_runs("test-exp", tmp_path / "mlruns") == []


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding an exclusive SQLite lock on `db` (as a long write would) for `seconds`."""
    code = ("import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('COMMIT')\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_locked_store_keeps_the_run_and_sync_logs_it_once(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    params = _params(tmp_path)
    with Stage("data", params, sections=["data"]) as st:  # creates the store
        assert st.finish({"n": 1}, tmp_path / "metrics" / "data.json")
    monkeypatch.setenv(tracking.ENV_RETRY_SECONDS, "0")
    caplog.set_level(logging.WARNING)
    holder = _hold_lock(tmp_path / "mlruns" / "mlflow.db", 600)
    try:  # MLflow waits 20 s (its SQLite busy timeout) before it gives up
        with Stage("quantize", params, sections=["quantize"]) as st:
            assert st.finish({"accuracy": 0.75, "size": 10}, tmp_path / "metrics" / "quantize.json") is None
    finally:
        holder.kill()
        holder.wait()
    warning = next(r.getMessage() for r in caplog.records if "tracking:" in r.getMessage())
    assert "run 'quantize' of experiment 'test-exp' was not logged" in warning and "database is locked" in warning
    kept = list((tmp_path / "mlruns" / "outbox").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in warning and "`edgesmith sync`" in warning
    assert io.read_json(tmp_path / "metrics" / "quantize.json")["accuracy"] == 0.75

    assert main(["sync", "--params", params]) == 0
    assert main(["sync", "--params", params]) == 0  # nothing left: no second copy
    runs = {r["name"]: r for r in _stage_runs("test-exp", tmp_path / "mlruns")}
    assert sorted(runs) == ["data", "quantize"]
    synced = runs["quantize"]
    assert synced["metrics"] == {"accuracy": 0.75, "size": 10.0, "duration_s": synced["metrics"]["duration_s"]}
    assert synced["tags"]["edgesmith.synced"] == "true" and synced["tags"]["edgesmith.stage"] == "quantize"
    assert synced["params"]["quantize.representative_samples"] == "500"
    assert not list((tmp_path / "mlruns" / "outbox").glob("*.json"))


def test_retries_wait_out_a_real_sqlite_lock(tmp_path):
    db = tmp_path / "x.db"
    sqlite3.connect(db).execute("CREATE TABLE t (v INTEGER)").connection.commit()
    holder = _hold_lock(db, 1.5)

    def write():
        c = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            c.execute("INSERT INTO t VALUES (1)")
        finally:
            c.close()

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        write()
    tracking.with_retries(write, "test write", budget_s=30)
    holder.wait()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (1,)
    with pytest.raises(ValueError):  # not a busy store: no retry
        tracking.with_retries(lambda: int("x"), "not transient", budget_s=30)


def test_a_retry_after_a_half_logged_run_completes_it_instead_of_duplicating(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    import mlflow

    real = mlflow.MlflowClient.set_terminated
    calls = []

    def flaky(self, run_id, *a, **kw):  # the store locks up after the run was created
        calls.append(run_id)
        if len(calls) == 1:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return real(self, run_id, *a, **kw)

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", flaky)
    run_id = tracking.log_run(run_name="teacher", experiment="e", mlruns_dir=tmp_path / "mlruns", params={"a": 1},
                              metrics={"acc": 0.5}, tags={})  # fmt: skip
    assert calls == [run_id, run_id]
    runs = _stage_runs("e", tmp_path / "mlruns")
    assert [(r["name"], r["metrics"]) for r in runs] == [("teacher", {"acc": 0.5})]


WRITER = """
import sys
from pipelines.common import tracking
store, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    assert tracking.log_run(run_name=f"{who}-{i}", experiment="sweep", mlruns_dir=store, params={"i": i},
                            metrics={"m": i}, tags={"who": who})
"""


def test_two_processes_on_one_fresh_sqlite_store_lose_and_duplicate_nothing(tmp_path):
    """What a `dvc queue start -j 2` sweep does: both create the store and the experiment, then log."""
    env = {**run_env(), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "mlruns"), who, "8"], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for who in "AB"]  # fmt: skip
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    names = [r["name"] for r in _stage_runs("sweep", tmp_path / "mlruns")]
    assert sorted(names) == sorted(f"{w}-{i}" for w in "AB" for i in range(8))
    assert not (tmp_path / "mlruns" / "outbox").exists()


def test_a_queued_experiment_logs_to_the_projects_store(tmp_path, monkeypatch):
    project = tmp_path / "project"
    copy = project / ".dvc" / "tmp" / "exps" / "tmpab12"
    (copy / ".dvc").mkdir(parents=True)
    (project / ".dvc" / "config").write_text("")
    monkeypatch.setenv("DVC_ROOT", str(project))
    assert tracking.store_dir(copy / "profiles" / "quick" / ".." / ".." / "mlruns") == project / "mlruns"
    assert tracking.store_dir(project / "mlruns") == project / "mlruns"
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    assert tracking.store_uris(copy / "mlruns")[0] == f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    assert tracking.store_dir(copy / "mlruns") == copy / "mlruns"


def test_each_dvc_experiment_is_a_pipeline_run_of_its_own(tmp_path, monkeypatch):
    """Stage runs of one experiment (DVC_EXP_NAME, as `dvc exp run` sets it) nest under one parent,
    those of another experiment or of the workspace under theirs; a changed params file is a new run."""
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    params = _params(tmp_path)
    for exp in ("exp-a", "exp-b", "exp-a", None):
        if exp:
            monkeypatch.setenv("DVC_EXP_NAME", exp)
        else:
            monkeypatch.delenv("DVC_EXP_NAME", raising=False)
        with Stage("data", params, sections=["data"]) as st:
            st.finish({"n": 1}, tmp_path / "metrics" / "data.json")
    raw = yaml.safe_load(Path(params).read_text())
    raw["teacher"]["epochs"] = 3
    Path(params).write_text(yaml.safe_dump(raw))
    with Stage("data", params, sections=["data"]) as st:
        st.finish({"n": 1}, tmp_path / "metrics" / "data.json")
    runs = tracking.find_runs("test-exp", tmp_path / "mlruns")
    parents = {r["run_id"]: r for r in runs if r["tags"].get("edgesmith.pipeline_run") == "true"}
    assert sorted(p["name"] for p in parents.values()) == ["exp-a @ unknown", "exp-b @ unknown", "pipeline @ unknown",
                                                          "pipeline @ unknown"]  # fmt: skip
    children = [r for r in runs if r["run_id"] not in parents]
    assert len(children) == 5 and all(r["tags"]["mlflow.parentRunId"] in parents for r in children)
    under = {parents[r["tags"]["mlflow.parentRunId"]]["name"] for r in children if r["tags"].get("dvc.exp_name") == "exp-a"}
    assert under == {"exp-a @ unknown"}
    assert sum(parents[r["tags"]["mlflow.parentRunId"]]["name"] == "exp-a @ unknown" for r in children) == 2


@pytest.fixture(params=["sqlite", "server"])
def store_uri(request, tmp_path):
    """The project's SQLite store, or a real MLflow server (SQLite and proxied artifacts of its own)."""
    if request.param == "sqlite":
        yield None
        return
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = tmp_path / "server"
    root.mkdir()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                             f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
                             "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=open(root / "log", "w"), stderr=subprocess.STDOUT, env=run_env(),
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None and time.time() < deadline, (root / "log").read_text()
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_one_pipeline_run_holds_its_stages_datasets_curves_models_and_the_registered_final(tmp_path, monkeypatch,
                                                                                           tiny_models, store_uri):
    """What the MLflow UI shows after a pipeline: its experiment in the model-training view, one
    pipeline run with the stage runs nested, MLflow's source tags, the dataset's splits as inputs,
    per-epoch curves as steps, the models as logged models with their figures, and the final one
    registered with its alias; the registered .tflite model loads and predicts through MLflow. The
    same in the project's SQLite store and on a tracking server."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from pipelines.edge import evaluate

    if store_uri:
        monkeypatch.setenv(tracking.ENV_URI, store_uri)
    else:
        monkeypatch.delenv(tracking.ENV_URI, raising=False)
    params = _params(tmp_path)
    x, y = tiny_models["x"], tiny_models["y"]
    data = tmp_path / "data" / "dataset.npz"
    data.parent.mkdir()
    np.savez(data, x_train=x[:400], y_train=y[:400], x_val=x[400:500], y_val=y[400:500], x_test=x[500:], y_test=y[500:])
    keras_file = tmp_path / "teacher.keras"
    tiny_models["keras"].save(keras_file)
    example = (x[500:502].astype("float32") / 255).tolist()
    with Stage("teacher", params, sections=["teacher"], inputs={"data": data}) as st:
        st.finish({"test_accuracy": 0.8}, tmp_path / "metrics" / "teacher.json", series={"val_accuracy": [0.5, 0.7, 0.8]},
                  models=[{"name": "teacher", "kind": "keras", "path": keras_file, "example": example}])
    with Stage("quantize", params, sections=["quantize"], inputs={"data": data}) as st:
        st.finish({"n": 2}, tmp_path / "metrics" / "quantize.json", models=[
            {"name": name, "kind": "tflite", "path": tiny_models[kind], "example": example, "metrics": {"accuracy": 0.7}}
            for name, kind in (("teacher_fp32", "fp32"), ("teacher_int8", "int8"))])
    with Stage("report", params, sections=["report", "budget"]) as st:
        st.summary({"teacher_int8": {"accuracy": 0.79}}, [], {"edgesmith.final": "teacher_int8"}, {"final": "teacher_int8"},
                   figures={"teacher_int8": {"accuracy": 0.79, "latency_p50_ms": 0.25, "memory_access_bytes": 1234}},
                   register={"name": "tiny", "model": "teacher_int8", "alias": "candidate", "tags": {"edgesmith.verdict": "ok"}})

    store = tmp_path / "mlruns"
    c = MlflowClient(tracking.store_uris(store)[0])
    exp = c.get_experiment_by_name("test-exp")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {r["name"]: r for r in tracking.find_runs("test-exp", store)}
    (parent,) = [r for r in runs.values() if r["tags"].get("edgesmith.pipeline_run") == "true"]
    assert sorted(runs) == sorted(["teacher", "quantize", parent["name"]])  # the summary is on the parent
    assert all(runs[s]["tags"]["mlflow.parentRunId"] == parent["run_id"] for s in ("teacher", "quantize"))
    assert parent["tags"]["edgesmith.summary"] == "true" and parent["metrics"]["teacher_int8.accuracy"] == 0.79
    teacher = runs["teacher"]
    assert teacher["tags"]["mlflow.source.name"] == "stages/teacher.py" and teacher["tags"]["mlflow.source.type"] == "LOCAL"
    assert [(m.step, m.value) for m in c.get_metric_history(teacher["run_id"], "val_accuracy")] == [(1, 0.5), (2, 0.7), (3, 0.8)]
    inputs = c.get_run(teacher["run_id"]).inputs.dataset_inputs
    contexts = {i.tags[0].value: i.dataset for i in inputs}
    assert sorted(contexts) == ["test", "train", "validation"]
    assert {d.name for d in contexts.values()} == {"fashion-mnist"}  # data.path's folder
    assert len({d.digest for d in contexts.values()}) == 3 and '"num_rows": 400' in contexts["train"].profile

    logged = {m.name: m for m in c.search_logged_models([exp.experiment_id])}
    assert sorted(logged) == ["teacher", "teacher_fp32", "teacher_int8"]
    assert logged["teacher"].source_run_id == teacher["run_id"]
    int8 = logged["teacher_int8"]
    figures = {m.key: m.value for m in c.get_logged_model(int8.model_id).metrics}
    assert figures.items() >= {"accuracy": 0.79, "latency_p50_ms": 0.25, "memory_access_bytes": 1234}.items()
    version = c.get_model_version_by_alias("tiny", "candidate")
    assert version.source == f"models:/{int8.model_id}" and version.run_id == runs["quantize"]["run_id"]
    assert version.tags["edgesmith.verdict"] == "ok" and "mlflow.source.git.commit" in version.tags
    assert version.tags["edgesmith.data_sha256"] == io.sha256_path(data)
    listed = c.get_logged_model(int8.model_id).tags["mlflow.modelVersions"]
    assert json.loads(listed) == [{"name": "tiny", "version": version.version}]
    monkeypatch.setenv(tracking.ENV_URI, tracking.store_uris(store)[0])
    loaded = mlflow.pyfunc.load_model("models:/tiny@candidate")
    images = x[500:510].astype("float32") / 255
    np.testing.assert_allclose(loaded.predict(images), evaluate.predict(tiny_models["int8"], images), atol=1e-6)
    assert main(["promote", "--params", params, "--to", "production", "--from", "candidate"]) == 2  # no such model name
    raw = yaml.safe_load(Path(params).read_text())
    raw["report"]["registered_model"] = "tiny"
    Path(params).write_text(yaml.safe_dump(raw))
    assert main(["promote", "--params", params]) == 0
    assert c.get_model_version_by_alias("tiny", "production").version == version.version
    assert main(["promote", "--params", params, "--to", "staging", "--version", "7"]) == 2  # one line, not a traceback
    keras_model = mlflow.pyfunc.load_model(f"models:/{logged['teacher'].model_id}")
    assert list(keras_model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 16, 16, 1]
    np.testing.assert_allclose(keras_model.predict(images), tiny_models["keras"].predict(images, verbose=0), atol=1e-5)


def test_a_curve_named_as_a_figure_is_refused():
    """One MLflow metric cannot be a figure (step 0) and a per-epoch curve at once."""
    with pytest.raises(ValueError, match="val_accuracy given as a metric and as a series"):
        tracking.record(run_name="teacher", experiment="e", params={}, metrics={"val_accuracy": 0.9}, tags={},
                        series={"val_accuracy": [0.5, 0.9]})
