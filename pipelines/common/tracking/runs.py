"""A stage's run: recorded as plain JSON, then logged as one MLflow run.

Every run carries a unique `edgesmith.run_key` tag, so a retry (or a sync) completes the run
it already started instead of making a second one.
"""

from __future__ import annotations

import functools
import getpass
import logging
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common.tracking.lock import is_transient, turn, with_retries
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


def _git(cwd: str | Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def _git_source(cwd: str) -> tuple[tuple[str, str], ...]:
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    url = _git(cwd, "config", "--get", "remote.origin.url")
    tags = {"mlflow.source.git.commit": git_commit(cwd)}
    tags |= {"mlflow.source.git.branch": branch} if branch and branch != "HEAD" else {}
    tags |= {"mlflow.source.git.repoURL": url} if url else {}
    return tuple(tags.items())


def source_tags(cwd: str | Path, source: str) -> dict[str, str]:
    """MLflow's own source tags (the runs table's Source column, the commit and its link)."""
    return {"mlflow.source.name": source, "mlflow.source.type": "LOCAL", "mlflow.user": getpass.getuser(),
            **dict(_git_source(str(Path(cwd).resolve())))}  # fmt: skip


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
    parent: Mapping[str, Any] | None = None,
    series: Mapping[str, Sequence[float]] | None = None,
    datasets: Iterable[Mapping[str, Any]] = (),
    models: Iterable[Mapping[str, Any]] = (),
    on_parent: bool = False,
    figures: Mapping[str, Mapping[str, Any]] | None = None,
    register: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything one run holds, as plain JSON: what is logged, or kept in the outbox.

    - `parent`: the pipeline run this one nests under ({"key", "name", "tags"}), found or made;
    - `series`: per-epoch values, logged as one metric with steps 1, 2, ...;
    - `datasets`: {"name", "digest", "source", "context"} each, logged as MLflow dataset inputs;
    - `models`: files logged as MLflow models of the run (`tracking.models`);
    - `on_parent`: the params, metrics, tags and artifacts go on the parent itself (the summary);
    - `figures`: {model name: figures} attached to the pipeline run's logged models of those names;
    - `register`: {"name", "model", "alias", "tags", "description"}: that logged model is registered.
    """
    now = int(time.time() * 1000)
    both = set(series or {}) & set(_numeric(metrics))
    if both:  # one MLflow metric cannot be both a figure (step 0) and a curve (steps 1, 2, ...)
        raise ValueError(f"run '{run_name}': {', '.join(sorted(both))} given as a metric and as a series; name the curve apart")
    return {
        "run_name": run_name,
        "experiment": experiment,
        "params": {k: str(v)[:6000] for k, v in _flatten(params).items()},
        "metrics": _numeric(metrics),
        "tags": {**{k: str(v) for k, v in tags.items()}, RUN_KEY: uuid.uuid4().hex},
        "artifacts": [str(Path(p).resolve()) for p in artifacts],
        "start_time_ms": start_time_ms or now,
        "end_time_ms": now,
        "parent": dict(parent) if parent else None,
        "series": {k: [float(v) for v in vs] for k, vs in (series or {}).items() if vs},
        "datasets": [dict(d) for d in datasets],
        "models": [{**m, "path": str(Path(m["path"]).resolve())} for m in models],
        "on_parent": on_parent,
        "figures": {k: dict(v) for k, v in (figures or {}).items()},
        "register": dict(register) if register else None,
    }


def log_run(*, mlruns_dir: str | Path, **fields: Any) -> str | None:
    """Log one finished stage as one MLflow run (`record`'s fields). Returns the run id, or None if
    tracking failed: then the run is written to the outbox and one warning names it and says where."""
    rec = record(**fields)
    uri, artifact_root = store_uris(mlruns_dir)
    try:
        return with_retries(lambda: push(rec, uri, artifact_root), f"run '{rec['run_name']}'")
    except Exception as exc:  # noqa: BLE001 - any tracking failure must not fail the stage
        from pipelines.common.tracking.outbox import keep

        kept = keep(rec, mlruns_dir)
        log.warning(
            "tracking: run '%s' of experiment '%s' was not logged to %s (%s); the results are in metrics/ "
            "and the outputs, %s",
            rec["run_name"], rec["experiment"], uri, reason(exc),
            f"and the run is kept in {kept}: `edgesmith sync` logs it later" if kept else "and could not be kept",
        )  # fmt: skip
        return None


def push(rec: Mapping[str, Any], uri: str, artifact_root: str = "", artifacts: Iterable[str] | None = None) -> str:
    """Log a record as one run; if a run with its key exists already (an earlier attempt), complete that one."""
    with turn(uri):
        return _push(rec, uri, artifact_root, artifacts)


# The experiment view MLflow opens: model training, not its GenAI overview (traces, sessions).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
PIPELINE_KEY = "edgesmith.pipeline_key"


def experiment_id(mlflow_client, name: str, artifact_root: str = "") -> str:
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is None:
        return mlflow_client.create_experiment(name, artifact_location=artifact_root or None, tags=dict([EXPERIMENT_KIND]))
    if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        mlflow_client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    return exp.experiment_id


def _by_tag(mlflow_client, exp_id: str, key: str, value: str) -> str | None:
    found = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{key}` = '{value}'", max_results=1)
    return found[0].info.run_id if found else None


def _parent_run(mlflow_client, exp_id: str, parent: Mapping[str, Any], start_ms: int) -> str:
    """The pipeline run: found by its key, or made (with the first stage's start time)."""
    return _by_tag(mlflow_client, exp_id, PIPELINE_KEY, parent["key"]) or mlflow_client.create_run(
        exp_id, start_time=start_ms, tags={**parent["tags"], PIPELINE_KEY: parent["key"]}, run_name=parent["name"]
    ).info.run_id


def batches(items: list, size: int) -> Iterator[list]:
    """`items` in slices of at most `size`: MLflow's log_batch takes 1,000 metrics, 100 params."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _push(rec: Mapping[str, Any], uri: str, artifact_root: str, artifacts: Iterable[str] | None) -> str:
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    from pipelines.common.tracking import models

    mlflow_client = client(uri)
    exp_id = experiment_id(mlflow_client, rec["experiment"], artifact_root)
    parent_id = _parent_run(mlflow_client, exp_id, rec["parent"], rec["start_time_ms"]) if rec.get("parent") else None
    tags = dict(rec["tags"])
    ts = rec["end_time_ms"]
    if rec.get("on_parent") and parent_id:
        run_id, found = parent_id, None
        tags.pop(RUN_KEY)
        mlflow_client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    else:
        found = _by_tag(mlflow_client, exp_id, RUN_KEY, tags[RUN_KEY])
        if parent_id:
            tags.setdefault("mlflow.parentRunId", parent_id)
        run_id = found or mlflow_client.create_run(exp_id, start_time=rec["start_time_ms"], tags=tags,
                                                   run_name=rec["run_name"]).info.run_id  # fmt: skip
    if not found:  # an earlier attempt logged these already
        values = [Metric(k, v, ts, 0) for k, v in rec["metrics"].items()]
        values += [Metric(k, v, ts, step) for k, vs in rec.get("series", {}).items() for step, v in enumerate(vs, 1)]
        for batch in batches(values, 1000):
            mlflow_client.log_batch(run_id, metrics=batch)
        inputs = [DatasetInput(Dataset(d["name"], d["digest"], "local", d["source"], profile=d.get("profile")),
                               [InputTag("mlflow.data.context", d["context"])]) for d in rec.get("datasets", [])]  # fmt: skip
        if inputs:
            mlflow_client.log_inputs(run_id, datasets=inputs)
    logged_params = mlflow_client.get_run(run_id).data.params  # an MLflow param, once logged, never changes
    for batch in batches([Param(k, v) for k, v in rec["params"].items() if k not in logged_params], 100):
        mlflow_client.log_batch(run_id, params=batch)
    for path in rec["artifacts"] if artifacts is None else artifacts:
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path))
        elif Path(path).is_dir():
            mlflow_client.log_artifacts(run_id, str(path), artifact_path=Path(path).name)
    for model in rec.get("models", []):
        if Path(model["path"]).exists():
            models.log_model(mlflow_client, exp_id, run_id, model, {**tags, **_pipeline_tag(rec)})
    if rec.get("parent") and (rec.get("figures") or rec.get("register")):
        try:
            _figures_and_registry(mlflow_client, exp_id, run_id, rec)
        except Exception as exc:  # noqa: BLE001 - the summary is logged; the registry is one warning
            if is_transient(exc):
                raise
            log.warning("tracking: the models' figures or the registration failed (%s); the summary is logged",
                        reason(exc))  # fmt: skip
    mlflow_client.set_terminated(run_id, "FINISHED", end_time=ts)
    if parent_id and parent_id != run_id:  # the pipeline run ends with its last stage so far
        mlflow_client.set_terminated(parent_id, "FINISHED", end_time=ts)
    return run_id


def _pipeline_tag(rec: Mapping[str, Any]) -> dict[str, str]:
    return {PIPELINE_KEY: rec["parent"]["key"]} if rec.get("parent") else {}


def _figures_and_registry(mlflow_client, exp_id: str, run_id: str, rec: Mapping[str, Any]) -> None:
    """The report's figures onto the pipeline run's logged models, and the final one registered."""
    from mlflow.entities import RunTag

    from pipelines.common.tracking import models

    logged = models.find(mlflow_client, exp_id, rec["parent"]["key"])
    attached = models.attach(mlflow_client, run_id, logged, rec.get("figures", {}))
    missing = sorted(set(rec.get("figures", {})) - set(attached))
    if missing:
        log.info("tracking: no logged model of this pipeline run for %s: their figures stay on the run only",
                 ", ".join(missing))  # fmt: skip
    reg = rec.get("register")
    if not reg:
        return
    if reg["model"] not in logged:
        log.warning("tracking: the final model %s has no logged model in this pipeline run; not registered", reg["model"])
        return
    version = models.register(mlflow_client, reg["name"], logged[reg["model"]], reg.get("alias"), reg.get("tags", {}),
                              reg.get("description", ""))  # fmt: skip
    mlflow_client.log_batch(run_id, tags=[RunTag("edgesmith.registered", f"{reg['name']} version {version}"
                                                 + (f" @{reg['alias']}" if reg.get("alias") else ""))])  # fmt: skip
    log.info("tracking: %s registered as %s version %s%s", reg["model"], reg["name"], version,
             f", alias @{reg['alias']}" if reg.get("alias") else f" (no alias: {reg.get('tags', {}).get('edgesmith.verdict', '')})")  # fmt: skip
