"""A stage's run: recorded as plain JSON, then logged as one MLflow run.

Every run carries a unique `edgesmith.run_key` tag, so a retry (or a sync) completes the run
it already started instead of making a second one.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.common.tracking.lock import turn, with_retries
from pipelines.common.tracking.store import client, reason, store_uris

log = logging.getLogger("pipelines.common.tracking")
RUN_KEY = "edgesmith.run_key"


def git_commit(cwd: str | Path = ".") -> str:
    """The commit checked out in `cwd`, or 'unknown'."""
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


def record(
    *,
    run_name: str,
    experiment: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Iterable[str | Path] = (),
    start_time_ms: int | None = None,
) -> dict[str, Any]:
    """Everything one run holds, as plain JSON: what is logged, or kept in the outbox."""
    now = int(time.time() * 1000)
    return {
        "run_name": run_name,
        "experiment": experiment,
        "params": {k: str(v)[:6000] for k, v in _flatten(params).items()},
        "metrics": _numeric(metrics),
        "tags": {**{k: str(v) for k, v in tags.items()}, RUN_KEY: uuid.uuid4().hex},
        "artifacts": [str(Path(p).resolve()) for p in artifacts],
        "start_time_ms": start_time_ms or now,
        "end_time_ms": now,
    }


def log_run(
    *,
    run_name: str,
    experiment: str,
    mlruns_dir: str | Path,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Iterable[str | Path] = (),
    start_time_ms: int | None = None,
) -> str | None:
    """Log one finished stage as one MLflow run. Returns the run id, or None if tracking failed.

    On failure the run is written to the outbox and one warning names it and says where.
    """
    rec = record(run_name=run_name, experiment=experiment, params=params, metrics=metrics, tags=tags,
                 artifacts=artifacts, start_time_ms=start_time_ms)  # fmt: skip
    uri, artifact_root = store_uris(mlruns_dir)
    try:
        return with_retries(lambda: push(rec, uri, artifact_root), f"run '{run_name}'")
    except Exception as exc:  # noqa: BLE001 - any tracking failure must not fail the stage
        from pipelines.common.tracking.outbox import keep

        kept = keep(rec, mlruns_dir)
        log.warning(
            "tracking: run '%s' of experiment '%s' was not logged to %s (%s); the results are in metrics/ "
            "and the outputs, %s",
            run_name, experiment, uri, reason(exc),
            f"and the run is kept in {kept}: `edgesmith sync` logs it later" if kept else "and could not be kept",
        )  # fmt: skip
        return None


def push(rec: Mapping[str, Any], uri: str, artifact_root: str = "", artifacts: Iterable[str] | None = None) -> str:
    """Log a record as one run; if a run with its key exists already (an earlier attempt), complete that one."""
    with turn(uri):
        return _push(rec, uri, artifact_root, artifacts)


def _push(rec: Mapping[str, Any], uri: str, artifact_root: str, artifacts: Iterable[str] | None) -> str:
    from mlflow.entities import Metric, Param

    mlflow_client = client(uri)
    exp = mlflow_client.get_experiment_by_name(rec["experiment"])
    exp_id = exp.experiment_id if exp else mlflow_client.create_experiment(rec["experiment"], artifact_location=artifact_root or None)
    key = rec["tags"][RUN_KEY]
    found = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY}` = '{key}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = mlflow_client.create_run(exp_id, start_time=rec["start_time_ms"], tags=dict(rec["tags"]),
                                   run_name=rec["run_name"]).info.run_id  # fmt: skip
    ts = rec["end_time_ms"]
    mlflow_client.log_batch(
        run_id,
        metrics=[Metric(k, v, ts, 0) for k, v in rec["metrics"].items()] if not found else [],
        params=[Param(k, v) for k, v in rec["params"].items()],
    )
    for path in rec["artifacts"] if artifacts is None else artifacts:
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path))
        elif Path(path).is_dir():
            mlflow_client.log_artifacts(run_id, str(path), artifact_path=Path(path).name)
    mlflow_client.set_terminated(run_id, "FINISHED", end_time=ts)
    return run_id
