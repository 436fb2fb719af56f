"""Tracking: the only package that talks to MLflow.

A stage hands over what it did (params, metrics, tags, artifacts) once, at its end.
Tracking is a copy of the record, not the record: if the store cannot be reached or
is locked, one warning says what was not logged and the stage still succeeds; its
outputs and `metrics/<stage>.json` stay the source of truth, and the run itself is kept
in the store's outbox (`<mlruns>/outbox/`) until `edgesmith sync` pushes it.

- `store`: where the store is (MLFLOW_TRACKING_URI or SQLite in mlruns/, also from inside a
  queued DVC experiment's copy of the project) and the MLflow client;
- `lock`: writers on one machine take turns, and a busy store is retried;
- `runs`: a stage's run, recorded and logged;
- `outbox`: runs that could not be logged, kept and synced later;
- `models`: model files as MLflow logged models, their figures, the registry (`tflite_pyfunc`: a
  .tflite file as a pyfunc model);
- `datasets`: a stage's dataset as MLflow dataset inputs;
- `queries`: reading runs back (compare, doctor).
"""

from pipelines.common.tracking.datasets import dataset_inputs
from pipelines.common.tracking.lock import ENV_RETRY_SECONDS, StoreBusy, is_transient, with_retries
from pipelines.common.tracking.outbox import sync
from pipelines.common.tracking.queries import find_runs, get_run, ping, promote, summary_runs
from pipelines.common.tracking.runs import RUN_KEY, git_commit, log_run, push, record, source_tags
from pipelines.common.tracking.store import ENV_URI, OUTBOX, outbox_dir, store_dir, store_uris

__all__ = [
    "ENV_RETRY_SECONDS", "ENV_URI", "OUTBOX", "RUN_KEY", "StoreBusy", "dataset_inputs", "find_runs", "get_run", "git_commit",
    "is_transient", "log_run", "outbox_dir", "ping", "promote", "push", "record", "source_tags", "store_dir", "store_uris", "summary_runs",
    "sync", "with_retries",
]  # fmt: skip
