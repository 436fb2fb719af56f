"""Writers of one SQLite store take turns, and a busy store is retried.

Two processes writing one SQLite store at once (a `dvc queue start -j 2` sweep) meet
`database is locked` and, on a fresh store, each other's half-made tables (seen: "table ...
already exists", "duplicate column name"). Writers on this machine therefore take turns
through a lock file beside the database; errors of a busy store are still retried (another
program may hold it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from pipelines.common.tracking.store import reason

log = logging.getLogger("pipelines.common.tracking")

# How long a locked store is retried before the run goes to the outbox, in seconds.
ENV_RETRY_SECONDS = "EDGESMITH_TRACKING_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0
# Errors of a store that another process is writing: worth waiting for, unlike a refused connection.
TRANSIENT = ("database is locked", "database table is locked", "already exists", "unique constraint failed",
             "no such table", "no such column", "duplicate column", "database schema has changed",
             "store lock busy")  # fmt: skip

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a busy store's, worth retrying."""
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
            log.info("tracking: %s: store busy (%s), attempt %d; retrying", what, reason(exc), attempt)
            time.sleep(pause)
            pause, attempt = min(pause * 1.6, 5.0), attempt + 1


class StoreBusy(RuntimeError):
    """Another process on this machine is writing the SQLite store."""


@contextlib.contextmanager
def turn(uri: str) -> Iterator[None]:
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
