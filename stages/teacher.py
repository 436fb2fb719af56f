"""Stage `teacher`: train the full-size CNN teacher on the prepared data."""

from __future__ import annotations

import argparse
import logging
import time

from pipelines.common import io
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.teacher")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.teacher", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--out", required=True, help="trained model (.keras)")
    ap.add_argument("--history", required=True, help="per-epoch history (.csv, for dvc plots)")
    ap.add_argument("--metrics", required=True, help="metrics/teacher.json")
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
        t0 = time.time()
        history = train.train_classifier(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, p, st.seed)
        train_s = time.time() - t0
        metrics = {
            "test_accuracy": train.accuracy(model, ds.x_test, ds.y_test),
            "val_accuracy": history["val_accuracy"][-1],
            "params": model.count_params(),
            "epochs": p["epochs"],
            "train_seconds": round(train_s, 1),
        }
        log.info("teacher: test accuracy %.4f after %.0f s", metrics["test_accuracy"], train_s)
        with io.atomic_path(args.out) as tmp:
            model.save(tmp)
        rows = ["epoch," + ",".join(history)]
        rows += [f"{e + 1}," + ",".join(f"{history[k][e]:.6f}" for k in history) for e in range(p["epochs"])]
        io.write_text(args.history, "\n".join(rows) + "\n")
        st.finish(metrics, args.metrics, artifacts=[args.history])


if __name__ == "__main__":
    main()
