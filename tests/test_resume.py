"""Long stages keep their finished work until they end: a killed teacher resumes after its last
finished epoch, a killed distill trains only the students it had not finished, each from after its
last finished epoch.

Covered: the teacher's resume callbacks leave an uninterrupted run bit for bit as it was; a teacher
stopped after epoch 2 of 3 runs only epoch 3, from the trained weights, with its history whole;
distill trains only the students without a kept result; a student killed in epoch 3 of 3 (with
FitNets adapters, no dropout) resumes after epoch 2 from other initial weights, trains only epoch 3
and ends with the unbroken run's weights and history exactly; a kept epoch cut short is dropped and
the student trains afresh; distill's worker processes die when the process that started them is
killed with SIGKILL; a kept folder of other settings or other code is dropped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.common import io
from pipelines.common.stage import resume_dir
from tests.conftest import ROOT, make_images, run_env
from tests.test_train import P


def test_resume_dir_is_named_by_its_key_and_drops_other_keys(tmp_path):
    a = resume_dir(tmp_path, {"epochs": 2, "data": "abc"})
    (a / "kept.json").write_text("{}")
    assert resume_dir(tmp_path, {"data": "abc", "epochs": 2}) == a and (a / "kept.json").is_file()  # key order
    b = resume_dir(tmp_path, {"epochs": 3, "data": "abc"})  # other settings: the old work is not theirs
    assert b != a and not a.exists() and [p.name for p in tmp_path.iterdir()] == [b.name]


def test_resume_dir_changes_with_the_code_that_does_the_work(tmp_path):
    code = tmp_path / "stage.py"
    code.write_text("epochs = 2\n")
    root = tmp_path / "state"
    a = resume_dir(root, {"data": "abc"}, code=[code])
    assert resume_dir(root, {"data": "abc"}, code=[code]) == a
    code.write_text("epochs = 3\n")
    b = resume_dir(root, {"data": "abc"}, code=[code])
    assert b != a and not a.exists()


class Interrupt(Exception):
    pass


def _fit(state, stop_after=None):
    """The teacher stage's fit on tiny data, optionally with its resume callbacks, killed (an
    exception) after epoch `stop_after`."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import train
    from pipelines.vision.tfk import keras
    from pipelines.vision.train import resumable

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == stop_after:
                raise Interrupt

    x, y = make_images(240, size=16, seed=7)
    x, y = x[..., None], y.astype(np.int64)
    p = {**P, "epochs": 3}
    seed_everything(3)
    model = train.build_teacher((16, 16, 1), 10, p)
    callbacks = [*(resumable(state, p["epochs"]) if state else []), *([Stop()] if stop_after else [])]
    history = train.train_classifier(model, x[:200], y[:200], x[200:], y[200:], p, 3, callbacks=callbacks)
    return model, history


def test_resume_callbacks_leave_an_uninterrupted_teacher_bit_for_bit_as_it_was(tmp_path):
    from pipelines.vision.train import kept_history

    plain, h_plain = _fit(None)
    kept, h_kept = _fit(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(plain.get_weights(), kept.get_weights(), strict=True))
    assert h_plain == h_kept == kept_history(tmp_path / "history.csv")  # the file holds every epoch exactly


def test_killed_teacher_resumes_after_its_last_finished_epoch(tmp_path):
    from pipelines.vision.train import kept_history

    with pytest.raises(Interrupt):
        _fit(tmp_path, stop_after=2)
    assert len(kept_history(tmp_path / "history.csv")["loss"]) == 2
    _, history = _fit(tmp_path)
    assert len(history["loss"]) == 1  # only the third epoch ran again
    full = kept_history(tmp_path / "history.csv")
    assert len(full["loss"]) == 3 and full["loss"][2] == history["loss"][0]
    assert full["loss"][2] < full["loss"][0]  # it went on from the trained weights, not from scratch


def test_kept_history_takes_the_last_row_of_a_repeated_epoch(tmp_path):
    from pipelines.vision.train import kept_history

    (tmp_path / "h.csv").write_text("epoch,loss\n0,2.0\n1,1.5\n1,1.25\n2,1.0\n")
    assert kept_history(tmp_path / "h.csv") == {"loss": [2.0, 1.25, 1.0]}
    assert kept_history(tmp_path / "missing.csv") == {}


def test_distill_trains_only_the_students_without_a_kept_result(tmp_path, monkeypatch):
    from pipelines.vision import kd_gain

    trained = []

    def fake_train(job):
        trained.append((job["seed"], job["kind"]))
        result = {"kind": job["kind"], "accuracy": 0.5}
        io.write_json(job["result"], result)
        return result

    monkeypatch.setattr(kd_gain, "train_student", fake_train)
    jobs = [{"seed": s, "kind": k, "result": str(tmp_path / f"{s}_{k}.json")} for s in (1, 2) for k in ("baseline", "kd")]
    io.write_json(jobs[1]["result"], {"kind": "kd", "accuracy": 0.75})  # finished before a kill
    results = kd_gain.train_students(jobs, workers=1)
    assert trained == [(1, "baseline"), (2, "baseline"), (2, "kd")]
    assert [r["accuracy"] for r in results] == [0.5, 0.75, 0.5, 0.5]  # in the order of the jobs
    trained.clear()
    assert kd_gain.train_students(jobs, workers=2) == results and not trained  # all kept: no worker starts


class _Epochs:
    """A callback that records the epochs trained and stops training (as a kill would) at the first
    batch of epoch `kill_at` (0-based)."""

    def __init__(self, kill_at=None):
        self.kill_at, self.ended = kill_at, []

    def set_model(self, model):
        pass

    def on_train_begin(self):
        pass

    def on_train_batch_begin(self, batch):
        if self.kill_at is not None and len(self.ended) == self.kill_at:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch):
        self.ended.append(epoch)


@pytest.fixture
def student_run(tiny_teacher):
    """Train a student 3 epochs with Hinton KD and hints (the adapters' weights are kept too), its
    initial weights drawn from `init_seed`; returns (student, history)."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import distill
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.student import build_student
    from pipelines.vision.teacher_targets import teacher_targets
    from tests.test_distill import ARCH, TRAIN

    teacher, x, y = tiny_teacher
    targets = teacher_targets([teacher], x[:240], 1.0, flips=True)
    loss = DistillLoss(alpha=0.5, hint_weight=1.0)

    def run(init_seed=0, arch=ARCH, **kw):
        seed_everything(init_seed)
        student = build_student((16, 16, 1), 10, arch)
        history = distill.fit_student(student, x[:240], y[:240], x[240:], y[240:], loss, {**TRAIN, "epochs": 3}, 0,
                                      targets=targets, teacher=teacher, **kw)  # fmt: skip
        return student, history

    return run


def _same_weights(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


def test_a_killed_student_resumes_after_its_last_epoch_as_if_unbroken(student_run, tmp_path):
    from tests.test_distill import ARCH

    unbroken, history = student_run()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        student_run(checkpoint=ckpt, callbacks=[_Epochs(kill_at=2)])
    kept = sorted(f.name for f in ckpt.iterdir())
    assert "epoch.json" in kept and any(f.startswith("epoch2.") for f in kept)
    assert not any(f.startswith("epoch1.") for f in kept)  # only the last finished epoch stays
    timed = io.read_json(ckpt / "epoch.json")["state"]["history"]["seconds"]
    (ckpt / "epoch1.index").write_bytes(b"")  # what a kill between writing the index and the clean-up leaves
    epochs = _Epochs()
    resumed, resumed_history = student_run(init_seed=123, checkpoint=ckpt, callbacks=[epochs])  # other initial weights
    assert epochs.ended == [2]  # only the third epoch trained
    assert {f.name.split(".")[0] for f in ckpt.glob("epoch[0-9]*")} == {"epoch3"}  # the leftover went too
    assert len(timed) == 2 and resumed_history["seconds"][:2] == timed  # kept, not timed again
    del history["seconds"], resumed_history["seconds"]
    assert resumed_history == history  # the two kept epochs' rows, then the third's as in the unbroken run
    assert _same_weights(unbroken, resumed)
    dropout = {**ARCH, "dropout": 0.5}  # keeping epochs draws no random numbers: with dropout, unchanged too
    assert _same_weights(student_run(arch=dropout)[0], student_run(arch=dropout, checkpoint=tmp_path / "unbroken")[0])


def test_a_kept_epoch_that_cannot_be_read_back_is_dropped_and_training_starts_afresh(student_run, tmp_path, caplog):
    unbroken, _ = student_run()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        student_run(checkpoint=ckpt, callbacks=[_Epochs(kill_at=2)])
    data = next(ckpt.glob("epoch2.data-*"))
    data.write_bytes(data.read_bytes()[:100])  # cut short, as by a crash of the machine
    epochs = _Epochs()
    student, _ = student_run(checkpoint=ckpt, callbacks=[epochs])
    assert epochs.ended == [0, 1, 2] and _same_weights(unbroken, student)
    assert "cannot be read back" in caplog.text


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has died and waits to be reaped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_distill_workers_die_with_a_stage_killed_by_sigkill():
    script = (
        "import multiprocessing, time\n"
        "from pipelines.common.workers import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = worker_pool(2)\n"
        "    [f.result() for f in [pool.submit(time.sleep, 2) for _ in range(2)]]\n"
        "    print(*[p.pid for p in multiprocessing.active_children()], flush=True)\n"
        "    time.sleep(600)\n"
    )  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=run_env(), stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        proc.kill()  # SIGKILL: the stage has no say
        proc.wait(timeout=60)
    deadline = time.time() + 30
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    orphans = [pid for pid in workers if _alive(pid)]
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert not orphans
