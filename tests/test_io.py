"""Atomic writes: a failure or a kill -9 halfway never leaves a half-written file under its final name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines.common import io
from tests.conftest import ROOT, run_env


def test_write_json_round_trip(tmp_path):
    p = tmp_path / "sub" / "m.json"
    io.write_json(p, {"a": 1, "b": [1.5, None]})
    assert io.read_json(p) == {"a": 1, "b": [1.5, None]}
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]


def test_outputs_get_the_usual_permissions_not_the_temp_files_0600(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "f.txt", "x")
        with io.atomic_dir(tmp_path / "d") as d:
            (d / "g.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_exception_keeps_previous_content_and_removes_temp(tmp_path):
    p = tmp_path / "out.bin"
    p.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with io.atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert p.read_bytes() == b"previous"
    assert [f.name for f in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    d = tmp_path / "models"
    with io.atomic_dir(d) as tmp:
        (tmp / "a.tflite").write_bytes(b"a")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(d) as tmp:
            (tmp / "b.tflite").write_bytes(b"b")
            raise RuntimeError("killed")
    assert sorted(f.name for f in d.iterdir()) == ["a.tflite"]
    with io.atomic_dir(d) as tmp:
        (tmp / "c.tflite").write_bytes(b"c")
    assert sorted(f.name for f in d.iterdir()) == ["c.tflite"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["models"]


WRITER = """
import sys, time
from pipelines.common import io
with io.atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"x" * 1000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
        f.write(b"y" * 1000)
"""


def test_kill_9_halfway_leaves_previous_file(tmp_path):
    p = tmp_path / "dataset.npz"
    p.write_bytes(b"previous")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(p)], stdout=subprocess.PIPE, text=True,
                            env=run_env(), cwd=ROOT)  # fmt: skip
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert p.read_bytes() == b"previous"
    leftovers = [f.name for f in tmp_path.iterdir() if f.name != "dataset.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(io.TMP_PREFIX)
    # the next run writes cleanly over it
    io.write_bytes(p, b"new")
    assert p.read_bytes() == b"new"


def test_hashes_are_stable_and_content_sensitive(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"1")
    h1 = io.sha256_path(tmp_path / "d")
    time.sleep(0.01)
    (tmp_path / "d" / "a").write_bytes(b"1")
    assert io.sha256_path(tmp_path / "d") == h1
    (tmp_path / "d" / "a").write_bytes(b"2")
    assert io.sha256_path(tmp_path / "d") != h1


def test_a_successful_write_removes_what_killed_writers_of_the_same_output_left(tmp_path):
    import tempfile

    fd, _ = tempfile.mkstemp(prefix=".tmp-teacher-", suffix=".keras", dir=tmp_path)
    os.close(fd)
    stale_dir = tmp_path / tempfile.mkdtemp(prefix=".tmp-tflite-", dir=tmp_path)
    (stale_dir / "half.tflite").write_bytes(b"half")
    other = tmp_path / ".tmp-teacher-student-abcdefgh.keras"  # another output's temporary name
    other.write_bytes(b"x")
    io.write_text(tmp_path / "teacher.keras", "model")
    with io.atomic_dir(tmp_path / "tflite") as d:
        (d / "a.tflite").write_bytes(b"a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "teacher.keras", "tflite"]
