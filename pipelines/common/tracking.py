"""The only module that talks to MLflow.

A stage hands over what it did (params, metrics, tags, artifacts) once, at its end.
Tracking is a copy of the record, not the record: if the store cannot be reached or
is locked, one warning says what was not logged and the stage still succeeds; its
outputs and `metrics/<stage>.json` stay the source of truth, and the run itself is kept
in the store's outbox (`<mlruns>/outbox/`) until `edgesmith sync` pushes it.

Two processes writing one SQLite store at once (a `dvc queue start -j 2` sweep) meet
`database is locked` and, on a fresh store, each other's half-made tables (seen: "table ...
already exists", "duplicate column name"). Writers on this machine therefore take turns
through a lock file beside the database; errors of a busy store are still retried (another
program may hold it), and every run carries a unique `edgesmith.run_key` tag, so a retry
(or a sync) completes the run it already started instead of making a second one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pipelines.common import io

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
# How long a locked store is retried before the run goes to the outbox, in seconds.
ENV_RETRY_SECONDS = "EDGESMITH_TRACKING_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0
RUN_KEY = "edgesmith.run_key"
OUTBOX = "outbox"
# Errors of a store that another process is writing: worth waiting for, unlike a refused connection.
TRANSIENT = ("database is locked", "database table is locked", "already exists", "unique constraint failed",
             "no such table", "no such column", "duplicate column", "database schema has changed",
             "store lock busy")  # fmt: skip

T = TypeVar("T")


def store_dir(mlruns_dir: str | Path) -> Path:
    """The project's store folder, also when a stage runs in a queued experiment's copy of the project.

    `dvc exp run --queue` runs each experiment in a temporary copy under `.dvc/tmp/exps/` and
    sets DVC_ROOT to the project; a store inside the copy would vanish with it.
    """
    root = Path(mlruns_dir).resolve()
    project = os.environ.get("DVC_ROOT")
    parts = root.parts
    for i in range(len(parts) - 3):
        if project and parts[i : i + 3] == (".dvc", "tmp", "exps"):  # <copy> = .dvc/tmp/exps/<name>/
            return Path(project).resolve().joinpath(*parts[i + 4 :])
    return root


def store_uris(mlruns_dir: str | Path) -> tuple[str, str]:
    """The tracking URI and artifact root: MLFLOW_TRACKING_URI, else SQLite in mlruns/.

    A SQLite URI keeps its artifacts in `artifacts/` beside the database; a server decides its own.
    """
    uri = os.environ.get(ENV_URI) or f"sqlite:///{store_dir(mlruns_dir) / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        return uri, (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return uri, ""


def outbox_dir(mlruns_dir: str | Path) -> Path:
    return store_dir(mlruns_dir) / OUTBOX


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


def _client(uri: str):
    """An MlflowClient for `uri` (a SQLite store's folder is created first).

    Never `mlflow.set_tracking_uri`: it also sets MLFLOW_TRACKING_URI in this process's
    environment, which would then override every later store this process is given.
    """
    # MLflow's defaults retry an unreachable server for minutes; a stage should not wait that long.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(t in text for t in TRANSIENT)


def retry_seconds() -> float:
    try:
        return float(os.environ.get(ENV_RETRY_SECONDS, DEFAULT_RETRY_SECONDS))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


def with_retries(action: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """Run `action`, again after a short pause while the store is locked, for up to `budget_s` seconds."""
    budget_s = retry_seconds() if budget_s is None else budget_s
    deadline = time.monotonic() + budget_s
    pause, attempt = 0.2, 1
    while True:
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - the caller decides what a final failure means
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.info("tracking: %s: store busy (%s), attempt %d; retrying", what, _reason(exc), attempt)
            time.sleep(pause)
            pause, attempt = min(pause * 1.6, 5.0), attempt + 1


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
        kept = _keep(rec, mlruns_dir)
        log.warning(
            "tracking: run '%s' of experiment '%s' was not logged to %s (%s); the results are in metrics/ "
            "and the outputs, %s",
            run_name, experiment, uri, _reason(exc),
            f"and the run is kept in {kept}: `edgesmith sync` logs it later" if kept else "and could not be kept",
        )  # fmt: skip
        return None


def _keep(rec: dict[str, Any], mlruns_dir: str | Path) -> Path | None:
    """Write the run to the outbox, with a hash of each artifact so sync can tell if it changed since."""
    rec = dict(rec)
    rec["artifact_sha256"] = {p: io.sha256_path(p) for p in rec["artifacts"] if Path(p).exists()}
    path = outbox_dir(mlruns_dir) / f"{rec['start_time_ms']}-{rec['run_name'].replace('/', '_')}-{rec['tags'][RUN_KEY][:8]}.json"
    try:
        io.write_json(path, rec)
        return path
    except OSError:
        return None


class StoreBusy(RuntimeError):
    """Another process on this machine is writing the SQLite store."""


@contextlib.contextmanager
def _turn(uri: str) -> Iterator[None]:
    """Exclusive use of a SQLite store among this machine's processes (a lock file beside it)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as f:
        deadline = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusy(f"store lock busy: {f.name}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def push(rec: Mapping[str, Any], uri: str, artifact_root: str = "", artifacts: Iterable[str] | None = None) -> str:
    """Log a record as one run; if a run with its key exists already (an earlier attempt), complete that one."""
    with _turn(uri):
        return _push(rec, uri, artifact_root, artifacts)


def _push(rec: Mapping[str, Any], uri: str, artifact_root: str, artifacts: Iterable[str] | None) -> str:
    from mlflow.entities import Metric, Param

    client = _client(uri)
    exp = client.get_experiment_by_name(rec["experiment"])
    exp_id = exp.experiment_id if exp else client.create_experiment(rec["experiment"], artifact_location=artifact_root or None)
    key = rec["tags"][RUN_KEY]
    found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY}` = '{key}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = client.create_run(exp_id, start_time=rec["start_time_ms"], tags=dict(rec["tags"]),
                                   run_name=rec["run_name"]).info.run_id  # fmt: skip
    ts = rec["end_time_ms"]
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, ts, 0) for k, v in rec["metrics"].items()] if not found else [],
        params=[Param(k, v) for k, v in rec["params"].items()],
    )
    for path in rec["artifacts"] if artifacts is None else artifacts:
        if Path(path).is_file():
            client.log_artifact(run_id, str(path))
        elif Path(path).is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=Path(path).name)
    client.set_terminated(run_id, "FINISHED", end_time=ts)
    return run_id


def sync(mlruns_dir: str | Path) -> tuple[list[str], list[str]]:
    """Log every run kept in the outbox; returns (logged, still kept) descriptions.

    An artifact whose content changed since its stage ran is not uploaded (and the run says so
    in the tag `edgesmith.sync.skipped_artifacts`); the params and metrics always are.
    """
    logged, kept = [], []
    uri, artifact_root = store_uris(mlruns_dir)
    for path in sorted(outbox_dir(mlruns_dir).glob("*.json")):
        rec = io.read_json(path)
        hashes = rec.get("artifact_sha256", {})
        same = [p for p in rec["artifacts"] if Path(p).exists() and hashes.get(p) == io.sha256_path(p)]
        skipped = [p for p in rec["artifacts"] if p not in same]
        rec["tags"] = {**rec["tags"], "edgesmith.synced": "true"}
        if skipped:
            rec["tags"]["edgesmith.sync.skipped_artifacts"] = ", ".join(Path(p).name for p in skipped)[:5000]
        what = f"{rec['experiment']}/{rec['run_name']} ({path.name})"
        try:
            run_id = with_retries(lambda rec=rec, same=same: push(rec, uri, artifact_root, same), what)
        except Exception as exc:  # noqa: BLE001
            kept.append(f"{what}: {_reason(exc)}")
            continue
        path.unlink()
        logged.append(f"{what} -> run {run_id}" + (f" (not uploaded, changed since: {len(skipped)})" if skipped else ""))
    return logged, kept


def find_runs(experiment: str, mlruns_dir: str | Path, max_results: int = 1000) -> list[dict[str, Any]]:
    """Runs of an experiment as plain dicts (name, tags, metrics, params), newest first."""
    client = _client(store_uris(mlruns_dir)[0])
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=max_results)
    return [_as_dict(r) for r in runs]


def _as_dict(r) -> dict[str, Any]:
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
    client = _client(store_uris(mlruns_dir)[0])
    exps = [e.experiment_id for e in client.search_experiments()]
    if not exps:
        return []
    runs = client.search_runs(exps, filter_string="tags.`edgesmith.summary` = 'true'", max_results=max_results,
                              order_by=["attributes.start_time DESC"])  # fmt: skip
    return [_as_dict(r) for r in runs]


def get_run(run_id: str, mlruns_dir: str | Path) -> dict[str, Any] | None:
    """One run by id, or None if the store has no such run."""
    client = _client(store_uris(mlruns_dir)[0])
    try:
        return _as_dict(client.get_run(run_id))
    except Exception as exc:  # noqa: BLE001
        if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc):
            return None
        raise


def ping(mlruns_dir: str | Path) -> tuple[str, str | None]:
    """(uri, None) when the store answers, (uri, reason) when it does not."""
    uri, _ = store_uris(mlruns_dir)
    try:
        _client(uri).search_experiments(max_results=1)
        return uri, None
    except Exception as exc:  # noqa: BLE001
        return uri, _reason(exc)
