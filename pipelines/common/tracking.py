"""The only module that talks to MLflow.

A stage hands over what it did (params, metrics, tags, artifacts) once, at its end.
Tracking is a copy of the record, not the record: if the store cannot be reached or
is locked, one warning says what was not logged and the stage still succeeds; its
outputs and `metrics/<stage>.json` stay the source of truth.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"


def store_uris(mlruns_dir: str | Path) -> tuple[str, str]:
    """The tracking URI and artifact root to use: MLFLOW_TRACKING_URI, else SQLite in mlruns/."""
    root = Path(mlruns_dir).resolve()
    if os.environ.get(ENV_URI):
        return os.environ[ENV_URI], ""
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def git_commit(cwd: str | Path = ".") -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _numeric(d: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in _flatten(d).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }


def _connect(uri: str):
    """The mlflow module, pointed at `uri` (a SQLite store's folder is created first)."""
    # MLflow's defaults retry an unreachable server for minutes; a stage should not wait that long.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return mlflow


def log_run(
    *,
    run_name: str,
    experiment: str,
    mlruns_dir: str | Path,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Iterable[str | Path] = (),
) -> str | None:
    """Log one finished stage as one MLflow run. Returns the run id, or None if tracking failed."""
    uri, artifact_root = store_uris(mlruns_dir)
    try:
        mlflow = _connect(uri)
        exp = mlflow.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else mlflow.create_experiment(
            experiment, artifact_location=artifact_root or None
        )
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=dict(tags)) as run:
            flat_params = {k: str(v)[:6000] for k, v in _flatten(params).items()}
            if flat_params:
                mlflow.log_params(flat_params)
            numeric = _numeric(metrics)
            if numeric:
                mlflow.log_metrics(numeric)
            for path in artifacts:
                if Path(path).is_file():
                    mlflow.log_artifact(str(path))
                elif Path(path).is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=Path(path).name)
            return run.info.run_id
    except Exception as exc:  # noqa: BLE001 - any tracking failure must not fail the stage
        log.warning(
            "tracking: run '%s' was not logged to %s (%s: %s); the results are in metrics/ and the outputs",
            run_name,
            uri,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        return None


def find_runs(experiment: str, mlruns_dir: str | Path, max_results: int = 1000) -> list[dict[str, Any]]:
    """Runs of an experiment as plain dicts (name, tags, metrics, params), newest first."""
    mlflow = _connect(store_uris(mlruns_dir)[0])
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = mlflow.search_runs([exp.experiment_id], max_results=max_results, output_format="list")
    return [
        {
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "tags": dict(r.data.tags),
            "metrics": dict(r.data.metrics),
            "params": dict(r.data.params),
            "artifact_uri": r.info.artifact_uri,
        }
        for r in runs
    ]


def ping(mlruns_dir: str | Path) -> tuple[str, str | None]:
    """(uri, None) when the store answers, (uri, reason) when it does not."""
    uri, _ = store_uris(mlruns_dir)
    try:
        _connect(uri).search_experiments(max_results=1)
        return uri, None
    except Exception as exc:  # noqa: BLE001
        return uri, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
