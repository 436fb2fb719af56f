"""What the vision and the graph keras-tuner tuners share: rejections in one line, state files
written atomically, and a wall-clock budget for their oracles.

keras-tuner prints the traceback of every failed trial (its `config.DEBUG` is on by default). The
vision and graph tuners raise `FailedTrialError` for trials over their limits and log why in one
line themselves, so `LoggedRejections` keeps that error's message on the trial and prints nothing;
any other exception is a crash, logged with its traceback and retried as keras-tuner does.

keras-tuner rewrites oracle.json, trial.json and the tuner's JSON in place; a search killed while
one was being written (seen: `kill -9` just as a trial began left an empty oracle.json) could not
be reloaded. `save_state_atomically()` makes every such file a temporary file renamed into place,
so a killed search always resumes.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

log = logging.getLogger("edgesmith.search")


class LoggedRejections:
    """Mixin for a `keras_tuner.Tuner` subclass (list it first)."""

    def _try_run_and_update_trial(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        import keras_tuner as kt

        status = kt.engine.trial.TrialStatus
        try:
            self._run_and_update_trial(trial, *args, **kwargs)
            trial.status = status.COMPLETED
        except kt.errors.FatalError:
            raise
        except kt.errors.FailedTrialError as exc:
            trial.status, trial.message = status.FAILED, str(exc)
        except Exception:
            log.exception("trial %s crashed", trial.trial_id)
            trial.status, trial.message = status.INVALID, traceback.format_exc()


def save_state_atomically() -> None:
    """Make keras-tuner's `Stateful.save` (every oracle, trial and tuner state file) atomic."""
    import json

    from keras_tuner.src.engine import stateful

    from pipelines.common import io

    def save(self: Any, fname: str) -> str:
        text = json.dumps(self.get_state())
        io.write_text(fname, text)
        return text

    stateful.Stateful.save = save


class TimeBudget:
    """Oracle mixin (list it first): no new trial once `deadline` (time.time()) has passed; the
    trial running then finishes."""

    deadline: float | None = None

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.deadline is not None and time.time() > self.deadline:
            log.info("search: the wall-clock budget is spent; no trial %s", trial_id)
            return {"status": "STOPPED", "values": None}
        return super().populate_space(trial_id)  # type: ignore[misc]
