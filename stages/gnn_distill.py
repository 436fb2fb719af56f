"""Stage `gnn_distill`: GLNN, an MLP student trained on a GNN teacher's soft labels (and the true
training labels), one student per teacher seed, in the transductive and the unseen-node setting;
saves the first seed's transductive student for export, with its PyTorch outputs on the test nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage
from pipelines.common.stats import mean_std

log = logging.getLogger("edgesmith.gnn_distill")


def pick_teacher(wanted: str, configs: dict, logits: dict, y: np.ndarray, val_mask: np.ndarray) -> str:
    """The teacher's name: as given, or 'best' = the GNN with the highest mean validation accuracy."""
    gnns = [n for n, c in configs.items() if c["task"] == "node" and c["conv"] != "mlp"]
    if wanted != "best":
        if wanted not in gnns:
            raise UserError(f"gnn_distill.teacher: {wanted!r} is not a trained GNN; one of best, {', '.join(gnns)}")
        return wanted
    if not gnns:
        raise UserError("gnn_distill.teacher: best: gnn_train trained no GNN (only MLPs)")

    def val(name: str) -> float:
        return float((logits[name].argmax(-1)[:, val_mask] == y[val_mask]).mean())

    return max(gnns, key=val)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_distill", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="the node dataset from graph_data (node.npz)")
    ap.add_argument("--models", required=True, help="gnn_train's folder (configs.json, node_logits.npz)")
    ap.add_argument("--out", required=True, help="folder for the student's weights and reference outputs")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_distill.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "models": args.models}
    with Stage("gnn_distill", args.params, sections=["graph", "gnn_distill"], inputs=inputs) as st:
        import torch

        from pipelines.graph import distill, models, store, train

        torch.set_num_threads(st.params["graph"]["torch_threads"])
        p = st.params["gnn_distill"]
        arrays = store.NodeArrays.load(args.data)
        data = train.node_tensors(arrays)
        configs = io.read_json(Path(args.models) / "configs.json")
        logits = dict(np.load(Path(args.models) / "node_logits.npz"))
        teacher = pick_teacher(p["teacher"], configs, logits, arrays.y, arrays.val_mask)
        teacher_logits = logits[teacher]
        seeds = [st.seed + i for i in range(len(teacher_logits))]

        def test_acc(lg: np.ndarray) -> float:
            return float((lg.argmax(-1)[arrays.test_mask] == arrays.y[arrays.test_mask]).mean())

        results: dict[str, dict] = {}
        t_acc, t_std = mean_std([test_acc(lg) for lg in teacher_logits])
        results["teacher"] = {"name": teacher, "conv": configs[teacher]["conv"], "accuracy": t_acc, "accuracy_std": t_std}
        if "mlp" in logits:
            m_acc, m_std = mean_std([test_acc(lg) for lg in logits["mlp"]])
            results["mlp"] = {"accuracy": m_acc, "accuracy_std": m_std}
        exported = None
        for setting in distill.SETTINGS:
            runs = []
            for i, s in enumerate(seeds):
                student, run = distill.train_student(data, teacher_logits[i], p, s, setting)
                runs.append(run)
                log.info("gnn_distill: %s student, teacher %s seed %d: test %.4f (teacher %.4f)", setting, teacher, s,
                         run.test_accuracy, test_acc(teacher_logits[i]))  # fmt: skip
                if setting == "transductive" and i == 0:
                    exported = (student, run)
            acc, std = mean_std([r.test_accuracy for r in runs])
            results[f"student_{setting}"] = {"accuracy": acc, "accuracy_std": std,
                                             "accuracies": [round(r.test_accuracy, 5) for r in runs]}  # fmt: skip
        student, run = exported
        student.eval()
        test_index = np.flatnonzero(arrays.test_mask)
        with torch.no_grad():
            ref = student(data.x_dense[torch.from_numpy(test_index)]).numpy()
        with io.atomic_dir(args.out) as out:
            np.savez(out / "student.npz", **distill.mlp_weights(student))
            np.savez(out / "reference.npz", test_index=test_index, logits=ref, y=arrays.y[test_index])
            io.write_json(out / "config.json", {"teacher": teacher, "seed": seeds[0], "setting": "transductive",
                                                "hidden": p["hidden"], "layers": p["layers"],
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
        st.finish(metrics, args.metrics)


if __name__ == "__main__":
    main()
