"""Tracking: runs land in the store with tags, params and metrics; an unreachable store only warns."""

from __future__ import annotations

import logging
import time

import yaml

from pipelines.common import tracking
from pipelines.common.stage import Stage
from tests.conftest import ROOT


def _params(tmp_path, mlruns="mlruns") -> str:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = mlruns
    raw["base"]["experiment"] = "test-exp"
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def test_stage_run_is_logged_with_tags_params_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    data = tmp_path / "input.bin"
    data.write_bytes(b"abc")
    with Stage("quantize", _params(tmp_path), sections=["quantize"], inputs={"data": data}) as st:
        run_id = st.finish({"accuracy": 0.9, "nested": {"size": 3}, "label": "x"}, tmp_path / "metrics" / "q.json")
    assert run_id
    runs = tracking.find_runs("test-exp", tmp_path / "mlruns")
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
    assert [r["name"] for r in tracking.find_runs(graph_experiment, tmp_path / "mlruns")] == ["graph_data"]
    assert tracking.find_runs("test-exp", tmp_path / "mlruns") == []
