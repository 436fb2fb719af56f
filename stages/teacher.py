"""Stage `teacher`: train the full-size CNN teacher on the prepared data.

With `--state-dir`, every finished epoch (weights, optimiser state, history row) is kept there
until the stage ends, and a run that was killed resumes after its last finished epoch. The
resumed epochs see a fresh data order and dropout draws from the seed, so a resumed teacher is
close to an uninterrupted one, not equal to it bit for bit; an uninterrupted run is unchanged.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time

from pipelines.common import io
from pipelines.common.stage import Stage, resume_dir

log = logging.getLogger("edgesmith.teacher")


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
        from pipelines.common.seeding import seed_everything
        from pipelines.vision import train
        from pipelines.vision.data import Dataset
        from pipelines.vision.evaluate import accuracy

        settings = st.params["teacher"]
        ds = Dataset.load(args.data)
        seed_everything(st.seed)
        model = train.build_teacher(ds.x_train.shape[1:], len(ds.class_names), settings)
        log.info("teacher: %d parameters, %d epochs on %d images", model.count_params(), settings["epochs"], len(ds.x_train))
        state, callbacks, done = None, [], 0
        if args.state_dir:
            state = resume_dir(args.state_dir, {"teacher": settings, "seed": st.seed, "data": io.sha256_file(args.data)},
                               code=[__file__, train.__file__])
            callbacks = train.resumable(state, settings["epochs"])
            done = len(train.kept_history(state / "history.csv").get("loss", []))
            if done:
                log.info("teacher: resuming after epoch %d of %d (%s)", done, settings["epochs"], state)
        t0 = time.time()
        history = train.train_classifier(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, settings, st.seed,
                                         callbacks=callbacks)  # fmt: skip
        train_s = time.time() - t0
        if state:  # every epoch's row, in the order of Keras's history (that of a fit that ran them all)
            kept = train.kept_history(state / "history.csv")
            history = {k: kept[k] for k in history} if history else kept
        metrics = {
            "test_accuracy": accuracy(model, ds.x_test, ds.y_test),
            "val_accuracy": history["val_accuracy"][-1],
            "params": model.count_params(),
            "epochs": settings["epochs"],
            "train_seconds": round(train_s, 1),
            "resumed_after_epoch": done,
        }
        log.info("teacher: test accuracy %.4f after %.0f s", metrics["test_accuracy"], train_s)
        with io.atomic_path(args.out) as tmp:
            model.save(tmp)
        io.write_text(args.history, train.history_csv(history, settings["epochs"]))
        st.finish(metrics, args.metrics, artifacts=[args.history])
        if state:
            shutil.rmtree(state)


if __name__ == "__main__":
    main()
