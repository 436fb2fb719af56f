"""Stage `teacher`: train the full-size CNN teacher on the prepared data.

With `--state-dir`, every finished epoch (weights, optimiser state, history row) is kept there
until the stage ends, and a run that was killed resumes after its last finished epoch. The
resumed epochs see a fresh data order and dropout draws from the seed, so a resumed teacher is
close to an uninterrupted one, not equal to it bit for bit; an uninterrupted run is unchanged.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import time
from pathlib import Path

from pipelines.common import io
from pipelines.common.stage import Stage, resume_dir

log = logging.getLogger("edgesmith.teacher")


def resumable(state: Path, epochs: int) -> list:
    """Callbacks that keep each finished epoch in `state`: its history row first (CSVLogger), then
    the weights, optimiser state and epoch (BackupAndRestore, which puts them back when the next
    fit starts). A kill between the two repeats that epoch; it never loses one."""
    from pipelines.vision.tfk import keras

    class Kept(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log.info("teacher: epoch %d of %d kept for a resume", epoch + 1, epochs)

    return [keras.callbacks.CSVLogger(str(state / "history.csv"), append=True),
            keras.callbacks.BackupAndRestore(str(state / "backup")), Kept()]  # fmt: skip


def kept_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch history in a CSVLogger file, the last row of each epoch (a repeated epoch's
    second row replaces its first)."""
    rows: dict[int, dict[str, float]] = {}
    if path.is_file():
        with path.open() as f:
            for r in csv.DictReader(f):
                epoch = int(r.pop("epoch"))
                rows[epoch] = {k: float(v) for k, v in r.items()}
    keys = list(next(iter(rows.values()), {}))
    return {k: [rows[e][k] for e in sorted(rows)] for k in keys}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.teacher", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--out", required=True, help="trained model (.keras)")
    ap.add_argument("--history", required=True, help="per-epoch history (.csv, for dvc plots)")
    ap.add_argument("--metrics", required=True, help="metrics/teacher.json")
    ap.add_argument("--state-dir", help="keep finished epochs here until the stage ends: a killed run resumes")
    args = ap.parse_args(argv)
    with Stage("teacher", args.params, sections=["teacher"], inputs={"data": args.data}) as st:
        from pipelines.vision import train
        from pipelines.vision.data import Dataset
        from pipelines.vision.tfk import seed_everything

        p = st.params["teacher"]
        ds = Dataset.load(args.data)
        seed_everything(st.seed)
        model = train.build_teacher(ds.x_train.shape[1:], len(ds.class_names), p)
        log.info("teacher: %d parameters, %d epochs on %d images", model.count_params(), p["epochs"], len(ds.x_train))
        state, callbacks, done = None, [], 0
        if args.state_dir:
            state = resume_dir(args.state_dir, {"teacher": p, "seed": st.seed, "data": io.sha256_file(args.data)},
                               code=[__file__, train.__file__])
            callbacks = resumable(state, p["epochs"])
            done = len(kept_history(state / "history.csv").get("loss", []))
            if done:
                log.info("teacher: resuming after epoch %d of %d (%s)", done, p["epochs"], state)
        t0 = time.time()
        history = train.train_classifier(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, p, st.seed,
                                         callbacks=callbacks)  # fmt: skip
        train_s = time.time() - t0
        if state:  # every epoch's row, in the order of Keras's history (that of a fit that ran them all)
            kept = kept_history(state / "history.csv")
            history = {k: kept[k] for k in history} if history else kept
        metrics = {
            "test_accuracy": train.accuracy(model, ds.x_test, ds.y_test),
            "val_accuracy": history["val_accuracy"][-1],
            "params": model.count_params(),
            "epochs": p["epochs"],
            "train_seconds": round(train_s, 1),
            "resumed_after_epoch": done,
        }
        log.info("teacher: test accuracy %.4f after %.0f s", metrics["test_accuracy"], train_s)
        with io.atomic_path(args.out) as tmp:
            model.save(tmp)
        rows = ["epoch," + ",".join(history)]
        rows += [f"{e + 1}," + ",".join(f"{history[k][e]:.6f}" for k in history) for e in range(p["epochs"])]
        io.write_text(args.history, "\n".join(rows) + "\n")
        st.finish(metrics, args.metrics, artifacts=[args.history])
        if state:
            shutil.rmtree(state)


if __name__ == "__main__":
    main()
