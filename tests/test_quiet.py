"""TensorFlow's native chatter is held back; real errors written to stderr still show."""

from __future__ import annotations

import os

from pipelines.common import quiet

CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796298258.588675   26068 port.cc:153] oneDNN custom operations are on.\n"
    "W0000 00:00:1796298258.590448   26068 tf_tfl_flatbuffer_helpers.cc:365] Ignored output_format.\n"
)


def test_native_chatter_is_held_back_and_errors_kept(capfd, monkeypatch):
    monkeypatch.delenv("EDGESMITH_VERBOSE", raising=False)
    with quiet.native_stderr():
        os.write(2, (CHATTER + "E0000 00:00:1.0 1 x.cc:1] a real error\nTraceback (most recent call last):\n").encode())
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "absl::InitializeLog" not in err and "Ignored output_format" not in err
    assert "a real error" in err and "Traceback" in err


def test_verbose_shows_everything(capfd, monkeypatch):
    monkeypatch.setenv("EDGESMITH_VERBOSE", "1")
    with quiet.native_stderr():
        os.write(2, CHATTER.encode())
    assert capfd.readouterr().err == CHATTER
