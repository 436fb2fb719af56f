"""Stage `gnn_distill`: GLNN, an MLP student trained on a GNN teacher's soft labels (and the true
training labels), one student per teacher seed, in the transductive and the unseen-node setting;
saves the first seed's transductive student for export, with its PyTorch outputs on the test nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.stage import Stage
from pipelines.common.stats import mean_std

log = logging.getLogger("edgesmith.gnn_distill")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_distill", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz)")
    ap.add_argument("--models", required=True, help="gnn_train's folder (configs.json, node_logits.npz)")
    ap.add_argument("--out", required=True, help="folder for the student's weights and reference outputs")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_distill.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "models": args.models}
    with Stage("gnn_distill", args.params, sections=["graph", "gnn_distill"], inputs=inputs) as st:
        import torch

        from pipelines.graph import distill, models, store, train

        torch.set_num_threads(st.params["graph"]["torch_threads"])
        settings = st.params["gnn_distill"]
        arrays, _ = store.load_halves(args.data)
        if arrays is None:
            with io.atomic_dir(args.out) as out:
                io.write_json(out / "config.json", store.skipped("node"))
            st.finish(store.skipped("node"), args.metrics)
            return
        data = train.node_tensors(arrays)
        configs = io.read_json(Path(args.models) / "configs.json")
        logits = dict(np.load(Path(args.models) / "node_logits.npz"))
        teacher = distill.pick_teacher(settings["teacher"], configs, logits, arrays.y, arrays.val_mask)
        teacher_logits = logits[teacher]
        seeds = [st.seed + i for i in range(len(teacher_logits))]
        accuracies = {name: [distill.accuracy_on_test_nodes(lg, arrays.y, arrays.test_mask) for lg in logits[name]]
                      for name in {teacher, "mlp"} & set(logits)}  # fmt: skip
        t_acc, t_std = mean_std(accuracies[teacher])
        results: dict[str, dict] = {}
        results["teacher"] = {"name": teacher, "conv": configs[teacher]["conv"], "accuracy": t_acc, "accuracy_std": t_std}
        if "mlp" in logits:
            m_acc, m_std = mean_std(accuracies["mlp"])
            results["mlp"] = {"accuracy": m_acc, "accuracy_std": m_std}
        per_setting, exported = distill.students_per_setting(data, teacher_logits, settings, seeds, teacher, arrays.y,
                                                             arrays.test_mask)  # fmt: skip
        results.update(per_setting)
        student, run = exported
        student.eval()
        test_index = np.flatnonzero(arrays.test_mask)
        with torch.no_grad():
            ref = student(data.x_dense[torch.from_numpy(test_index)]).numpy()
        with io.atomic_dir(args.out) as out:
            np.savez(out / "student.npz", **distill.mlp_weights(student))
            np.savez(out / "reference.npz", test_index=test_index, logits=ref, y=arrays.y[test_index])
            io.write_json(out / "config.json", {"teacher": teacher, "seed": seeds[0], "setting": "transductive",
                                                "hidden": settings["hidden"], "layers": settings["layers"],
                                                "in_dim": arrays.num_features, "out_dim": arrays.num_classes})  # fmt: skip
        trans, unseen = results["student_transductive"], results["student_unseen"]
        metrics = {
            "dataset": arrays.name, "seeds": seeds, **results,
            "student_gap_to_teacher_points": round(100 * (t_acc - trans["accuracy"]), 3),
            "student_gain_over_mlp_points": round(100 * (trans["accuracy"] - results["mlp"]["accuracy"]), 3) if "mlp" in results else None,
            "unseen_gap_to_teacher_points": round(100 * (t_acc - unseen["accuracy"]), 3),
            "exported": {"setting": "transductive", "seed": seeds[0], "accuracy": round(run.test_accuracy, 5),
                         "params": models.count_params(student), "file": f"{args.out}/student.npz"},
        }  # fmt: skip
        log.info("gnn_distill: teacher %s %.2f %%, student %.2f %% (transductive) / %.2f %% (unseen nodes)", teacher,
                 100 * t_acc, 100 * trans["accuracy"], 100 * unseen["accuracy"])  # fmt: skip
        st.finish(metrics, args.metrics, series={f"student/{k}": v for k, v in run.history.items()})


if __name__ == "__main__":
    main()
