"""Worker processes for a stage's independent jobs, which die with the stage.

Fresh processes (spawn: TensorFlow's and torch's runtimes do not survive a fork). On Linux each
asks the kernel to kill it when the stage's process dies (PR_SET_PDEATHSIG), so the workers of a
stage killed by `kill -9` do not go on training, orphaned, beside the next run. The signal comes
when the thread that started the worker ends: a `ProcessPoolExecutor` starts its workers in the
thread that submits the jobs, the stage's main thread.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Have the kernel kill this process when `parent` dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux") and ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL):
        log.warning("this worker will not die with the stage (prctl: errno %d)", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def _start(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    die_with(parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if initializer is not None:
        initializer(*initargs)


def worker_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """`workers` fresh processes that die with this one, each set up by `initializer(*initargs)`."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(os.getpid(), initializer, initargs))  # fmt: skip
