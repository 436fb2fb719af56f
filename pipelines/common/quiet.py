"""The log a user reads is the project's own: TensorFlow's native start-up and converter lines
(oneDNN, CUDA drivers, CPU features, absl, MLIR passes) are held back unless `EDGESMITH_VERBOSE=1`.

The native libraries write to file descriptor 2 directly, before any Python logging is set up, so
`native_stderr()` points that descriptor at a temporary file for the duration of a block and then
writes back every line that is not such chatter: errors and Python tracebacks still show.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# absl's native format: severity I/W, date, time, thread, file:line]
_ABSL = re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]")
_CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "To enable the following instructions:",
    "INFO: Created TensorFlow Lite XNNPACK delegate",
    "fully_quantize: 0, inference_type: 6",
    "Estimated count of arithmetic ops:",
)


def verbose() -> bool:
    return os.environ.get("EDGESMITH_VERBOSE", "").lower() not in ("", "0", "false", "no")


def is_chatter(line: str) -> bool:
    return bool(_ABSL.match(line)) or any(line.startswith(c) for c in _CHATTER)


@contextlib.contextmanager
def native_stderr() -> Iterator[None]:
    """Hold back native chatter written to stderr inside the block (everything, when verbose)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().decode(errors="replace").splitlines(keepends=True) if not is_chatter(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
