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
from pipelines.common.errors import UserError
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

        ds = Dataset.load(args.data)
        settings = st.params["teacher"]
        epochs = settings["epochs"]
        passes = train.passes_per_epoch(len(ds.x_train), settings["batch_size"], epochs, settings["min_steps"])
        seed_everything(st.seed)
        model = train.build_teacher(ds.x_train.shape[1:], len(ds.class_names), settings)
        log.info("teacher: %d parameters, %d epochs on %d images%s", model.count_params(), epochs, len(ds.x_train),
                 f", {passes} passes over them an epoch to reach teacher.min_steps {settings['min_steps']}"
                 if passes > 1 else "")  # fmt: skip
        state, callbacks, done = None, [], 0
        if args.state_dir:
            state = resume_dir(args.state_dir, {"teacher": settings, "seed": st.seed, "data": io.sha256_file(args.data)},
                               code=[__file__, train.__file__])
            callbacks = train.resumable(state, epochs)
            done = len(train.kept_history(state / "history.csv").get("loss", []))
            if done:
                log.info("teacher: resuming after epoch %d of %d (%s)", done, epochs, state)
        best = train.BestWeights() if settings["select"] == "best_val" else None
        callbacks += [best] if best else []
        t0 = time.time()
        history = train.train_classifier(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, settings, st.seed,
                                         callbacks=callbacks)  # fmt: skip
        train_s = time.time() - t0
        if state:  # every epoch's row, in the order of Keras's history (that of a fit that ran them all)
            kept = train.kept_history(state / "history.csv")
            history = {k: kept[k] for k in history} if history else kept
        kept = best.best_epoch if best and best.best_epoch else epochs
        val_accuracy, chance = history["val_accuracy"][kept - 1], train.chance_accuracy(ds.y_val)
        if settings["min_gain_over_chance"] > 0 and val_accuracy < chance + settings["min_gain_over_chance"]:
            raise UserError(
                f"teacher: validation accuracy {val_accuracy:.1%} is within {settings['min_gain_over_chance']:.0%} of "
                f"chance ({chance:.1%}, always the most frequent class): it learnt nothing to distil; give it more "
                "steps (teacher.epochs, teacher.min_steps), change teacher.learning_rate or teacher.widths, or check "
                "the labels of data.path"
            )
        metrics = {
            "test_accuracy": accuracy(model, ds.x_test, ds.y_test),
            "val_accuracy": val_accuracy,
            "chance_accuracy": chance,
            "selected_epoch": kept,
            "params": model.count_params(),
            "epochs": epochs,
            "passes_per_epoch": passes,
            "steps": epochs * passes * -(-len(ds.x_train) // settings["batch_size"]),
            "train_seconds": round(train_s, 1),
            "resumed_after_epoch": done,
        }
        log.info("teacher: test accuracy %.4f (epoch %d of %d, validation %.4f, chance %.4f) after %.0f s",
                 metrics["test_accuracy"], kept, epochs, val_accuracy, chance, train_s)  # fmt: skip
        with io.atomic_path(args.out) as tmp:
            model.save(tmp)
        io.write_text(args.history, train.history_csv(history, epochs))
        st.finish(metrics, args.metrics, artifacts=[args.history], series={f"teacher/{k}": v for k, v in history.items()},
                  models=[{"name": "teacher", "kind": "keras", "path": args.out, "example": ds.example(),
                           "metrics": {"test_accuracy": metrics["test_accuracy"], "params": metrics["params"]}}])  # fmt: skip
        if state:
            shutil.rmtree(state)


if __name__ == "__main__":
    main()
