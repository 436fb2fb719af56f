"""A keras-tuner trial rejected by a limit is one log line, not a traceback.

keras-tuner prints the traceback of every failed trial (its `config.DEBUG` is on by default). The
vision and graph tuners raise `FailedTrialError` for trials over their limits and log why in one
line themselves, so `LoggedRejections` keeps that error's message on the trial and prints nothing;
any other exception is a crash, logged with its traceback and retried as keras-tuner does.
"""

from __future__ import annotations

import logging
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
