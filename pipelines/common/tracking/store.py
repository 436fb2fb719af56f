"""Where the MLflow store is, and the one way a client to it is made."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ENV_URI = "MLFLOW_TRACKING_URI"
OUTBOX = "outbox"


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
    """Where runs that could not be logged wait for `edgesmith sync`."""
    return store_dir(mlruns_dir) / OUTBOX


def client(uri: str):
    """An MlflowClient for `uri` (a SQLite store's folder is created first).

    Never `mlflow.set_tracking_uri`: it also sets MLFLOW_TRACKING_URI in this process's
    environment, which would then override every later store this process is given.
    """
    # MLflow's defaults retry an unreachable server for minutes; a stage should not wait that long.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in the stages' logs
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def default_store(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI set to `uri` for the calls inside (those of MLflow that ignore their
    client's store), then put back as it was."""
    before = os.environ.get(ENV_URI)
    os.environ[ENV_URI] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_URI, None)
        else:
            os.environ[ENV_URI] = before


def reason(exc: BaseException) -> str:
    """An exception in one line, for a warning."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
