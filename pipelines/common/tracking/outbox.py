"""Runs that could not be logged, kept beside the store until `edgesmith sync` logs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.common import io
from pipelines.common.tracking.lock import with_retries
from pipelines.common.tracking.runs import RUN_KEY, push
from pipelines.common.tracking.store import outbox_dir, reason, store_uris


def keep(rec: dict[str, Any], mlruns_dir: str | Path) -> Path | None:
    """Write the run to the outbox, with a hash of each artifact so sync can tell if it changed since."""
    rec = dict(rec)
    rec["artifact_sha256"] = {p: io.sha256_path(p) for p in rec["artifacts"] if Path(p).exists()}
    path = outbox_dir(mlruns_dir) / f"{rec['start_time_ms']}-{rec['run_name'].replace('/', '_')}-{rec['tags'][RUN_KEY][:8]}.json"
    try:
        io.write_json(path, rec)
        return path
    except OSError:
        return None


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
            kept.append(f"{what}: {reason(exc)}")
            continue
        path.unlink()
        logged.append(f"{what} -> run {run_id}" + (f" (not uploaded, changed since: {len(skipped)})" if skipped else ""))
    return logged, kept
