"""Reading runs back from the store: an experiment's runs, the pipeline summaries, one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.common.tracking.store import client, reason, store_uris


def find_runs(experiment: str, mlruns_dir: str | Path, max_results: int = 1000) -> list[dict[str, Any]]:
    """Runs of an experiment as plain dicts (name, tags, metrics, params), newest first."""
    mlflow_client = client(store_uris(mlruns_dir)[0])
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = mlflow_client.search_runs([exp.experiment_id], max_results=max_results)
    return [as_dict(r) for r in runs]


def as_dict(r) -> dict[str, Any]:
    """An MLflow run as a plain dict."""
    return {
        "run_id": r.info.run_id,
        "name": r.info.run_name,
        "experiment_id": r.info.experiment_id,
        "start_time": r.info.start_time,
        "tags": dict(r.data.tags),
        "metrics": dict(r.data.metrics),
        "params": dict(r.data.params),
        "artifact_uri": r.info.artifact_uri,
    }


def summary_runs(mlruns_dir: str | Path, max_results: int = 5000) -> list[dict[str, Any]]:
    """Every pipeline summary run in the store (all experiments), newest first."""
    mlflow_client = client(store_uris(mlruns_dir)[0])
    exps = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not exps:
        return []
    runs = mlflow_client.search_runs(exps, filter_string="tags.`edgesmith.summary` = 'true'", max_results=max_results,
                              order_by=["attributes.start_time DESC"])  # fmt: skip
    return [as_dict(r) for r in runs]


def get_run(run_id: str, mlruns_dir: str | Path) -> dict[str, Any] | None:
    """One run by id, or None if the store has no such run."""
    mlflow_client = client(store_uris(mlruns_dir)[0])
    try:
        return as_dict(mlflow_client.get_run(run_id))
    except Exception as exc:  # noqa: BLE001
        if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc):
            return None
        raise


def ping(mlruns_dir: str | Path) -> tuple[str, str | None]:
    """(uri, None) when the store answers, (uri, reason) when it does not."""
    uri, _ = store_uris(mlruns_dir)
    try:
        client(uri).search_experiments(max_results=1)
        return uri, None
    except Exception as exc:  # noqa: BLE001
        return uri, reason(exc)


def promote(mlruns_dir: str | Path, name: str, to_alias: str, from_alias: str | None, version: str | None) -> dict[str, Any]:
    """Point `to_alias` of the registered model `name` at `version` (or at the version `from_alias`
    points at); returns that version's number, model and run. A missing model, alias or version is
    one UserError line."""
    from mlflow.exceptions import MlflowException

    from pipelines.common.errors import UserError
    from pipelines.common.tracking import models

    uri = store_uris(mlruns_dir)[0]
    try:
        chosen = models.promote(client(uri), name, to_alias, from_alias, version)
    except MlflowException as exc:
        what = f"version {version}" if version else f"alias @{from_alias}"
        raise UserError(f"{uri}: registered model '{name}' has no {what} ({str(exc).splitlines()[0]}); run the "
                        "pipeline first, or pass --version") from None  # fmt: skip
    return {"version": chosen.version, "model": chosen.tags.get("edgesmith.model", chosen.source),
            "run_id": chosen.run_id, "aliases": sorted({*chosen.aliases, to_alias})}  # fmt: skip
