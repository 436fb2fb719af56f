"""Stage `gnn_export`: rebuild the GLNN student in tf-keras from its PyTorch weights, convert it to
fp32 and full-integer int8 TFLite, and check both files against the PyTorch outputs on the test
nodes in the TFLite runtime. TensorFlow only: no torch in this process."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_export")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_export", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="the node dataset from graph_data (node.npz)")
    ap.add_argument("--student", required=True, help="gnn_distill's folder (student.npz, reference.npz)")
    ap.add_argument("--out", required=True, help="folder for student_fp32.tflite and student_int8.tflite")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_export.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "student": args.student}
    with Stage("gnn_export", args.params, sections=["graph", "gnn_export"], inputs=inputs) as st:
        from pipelines.common.seeding import seed_everything
        from pipelines.edge import evaluate
        from pipelines.edge.predict import write_labels
        from pipelines.graph import export, store

        settings = st.params["gnn_export"]
        seed_everything(st.seed)
        arrays = store.NodeArrays.load(args.data)
        weights = dict(np.load(Path(args.student) / "student.npz"))
        ref = dict(np.load(Path(args.student) / "reference.npz"))
        x_test = arrays.dense_features(ref["test_index"])
        y_test = ref["y"]
        model = export.build_mlp(weights)
        keras_diff = float(np.abs(model.predict(x_test, verbose=0) - ref["logits"]).max())
        # calibrate on training nodes first (what a deployment has seen), then a seeded sample of the rest
        rng = np.random.default_rng(st.seed)
        order = np.concatenate([np.flatnonzero(arrays.train_mask), rng.permutation(np.flatnonzero(~arrays.train_mask))])
        representative = arrays.dense_features(order[: settings["representative_samples"]])
        torch_acc = float((ref["logits"].argmax(-1) == y_test).mean())
        files = {}
        with io.atomic_dir(args.out) as out:
            for variant, blob in export.to_tflite(model, representative).items():
                path = out / f"student_{variant}.tflite"
                path.write_bytes(blob)
                pred = evaluate.predict(path, x_test, batch_size=len(x_test))
                acc = float((pred.argmax(-1) == y_test).mean())
                files[f"student_{variant}"] = {
                    "file": f"{args.out}/{path.name}", "dtype": "float32" if variant == "fp32" else "int8",
                    "accuracy": acc, "torch_accuracy": torch_acc,
                    "accuracy_drop_points": round(100 * (torch_acc - acc), 3),
                    "max_abs_logit_diff": round(float(np.abs(pred - ref["logits"]).max()), 6),
                    "argmax_agreement": float((pred.argmax(-1) == ref["logits"].argmax(-1)).mean()),
                    "size_bytes": len(blob), "tensor_dtypes": evaluate.tensor_dtypes(path),
                }  # fmt: skip
                log.info("gnn_export: %s accuracy %.4f (PyTorch %.4f), max |logit diff| %.2g, %d bytes", path.name,
                         acc, torch_acc, files[f"student_{variant}"]["max_abs_logit_diff"], len(blob))  # fmt: skip
            write_labels(out, [str(c) for c in range(arrays.num_classes)])  # the dataset's classes, numbered as PyG gives them
            fp32_diff = files["student_fp32"]["max_abs_logit_diff"]
            if fp32_diff > settings["fp32_tolerance"] or keras_diff > settings["fp32_tolerance"]:
                raise UserError(
                    f"gnn_export: the fp32 export disagrees with PyTorch (max |logit diff| Keras {keras_diff:.3g}, "
                    f"TFLite {fp32_diff:.3g} > gnn_export.fp32_tolerance {settings['fp32_tolerance']})"
                )
        metrics = {"dataset": arrays.name, "test_count": int(len(y_test)), "keras_max_abs_logit_diff": round(keras_diff, 8),
                   "params": int(model.count_params()), "models": files}  # fmt: skip
        example = x_test[:2].astype(np.float32).tolist()
        st.finish(metrics, args.metrics, models=[
            {"name": name, "kind": "tflite", "path": f["file"], "example": example, "params": {"dtype": f["dtype"]},
             "metrics": {"accuracy": f["accuracy"], "size_bytes": f["size_bytes"]}} for name, f in files.items()])  # fmt: skip


if __name__ == "__main__":
    main()
