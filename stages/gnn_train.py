"""Stage `gnn_train`: train every node classifier (GCN, GAT, GraphSAGE, the MLP baseline, and the
search's best) over several seeds on the public split, and every graph classifier (GIN) by
stratified k-fold cross-validation; save the weights and each node model's logits for distillation."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage
from pipelines.common.stats import mean_std

log = logging.getLogger("edgesmith.gnn_train")
NODE_KEYS = ("conv", "hidden", "layers", "heads", "dropout", "attention_dropout", "lr", "weight_decay",
             "weight_decay_first_only", "epochs")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_train", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz, graph.npz)")
    ap.add_argument("--search", required=True, help="gnn_search's best configuration (.json)")
    ap.add_argument("--out", required=True, help="folder for weights, configs and node logits")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_train.json")
    args = ap.parse_args(argv)
    inputs = {"data": args.data, "search": args.search}
    with Stage("gnn_train", args.params, sections=["graph", "gnn_train"], inputs=inputs) as st:
        import torch

        from pipelines.graph import models, store, train

        torch.set_num_threads(st.params["graph"]["torch_threads"])
        settings = st.params["gnn_train"]
        node_arrays = store.NodeArrays.load(Path(args.data) / "node.npz")
        graph_arrays = store.GraphArrays.load(Path(args.data) / "graph.npz")
        data = train.node_tensors(node_arrays)
        configs = dict(settings["node_models"])
        if settings["include_searched"]:
            searched = io.read_json(args.search)
            missing = [k for k in NODE_KEYS if k not in searched]
            if missing:
                raise UserError(f"{args.search}: not a gnn_search result (missing {', '.join(missing)}); run gnn_search again")
            configs["searched"] = {k: searched[k] for k in NODE_KEYS}
        seeds = [st.seed + i for i in range(settings["seeds"])]
        node_metrics, logits, saved = {}, {}, {}
        curves: dict[str, list[float]] = {}  # the deployed (first) seed's per-epoch figures of each node model
        with io.atomic_dir(args.out) as out:
            for name, cfg in configs.items():
                runs = []
                for s in seeds:
                    model, run = train.fit_node_model(cfg, data, s)
                    runs.append(run)
                    log.info("gnn_train: %s seed %d: test %.4f, val %.4f (epoch %d, %.1f s)", name, s,
                             runs[-1].test_accuracy, runs[-1].val_accuracy, runs[-1].best_epoch, runs[-1].seconds)  # fmt: skip
                torch.save(runs[0].state_dict, out / f"{name}.pt")  # the first seed's model is the one deployed and timed
                curves.update({f"{name}/{k}": v for k, v in runs[0].history.items()})
                logits[name] = np.stack([r.logits for r in runs]).astype(np.float32)
                acc, acc_std = mean_std([r.test_accuracy for r in runs])
                val, val_std = mean_std([r.val_accuracy for r in runs])
                node_metrics[name] = {
                    **cfg, "dataset": node_arrays.name, "accuracy": acc, "accuracy_std": acc_std,
                    "val_accuracy": val, "val_accuracy_std": val_std,
                    "accuracies": [round(r.test_accuracy, 5) for r in runs],
                    "best_epochs": [r.best_epoch for r in runs], "params": models.count_params(model),
                    "train_seconds": round(sum(r.seconds for r in runs), 2), "file": f"{args.out}/{name}.pt",
                    "size_bytes": (out / f"{name}.pt").stat().st_size,
                }  # fmt: skip
                saved[name] = {**cfg, "task": "node", "in_dim": data.num_features, "out_dim": data.num_classes}
                log.info("gnn_train: %s on %s: %.2f +- %.2f %% over %d seeds", name, node_arrays.name, 100 * acc,
                         100 * acc_std, len(seeds))  # fmt: skip
            graph_metrics = {}
            graphs = train.graph_data_list(graph_arrays)
            folds = int(graph_arrays.folds.max() + 1)
            for name, cfg in settings["graph_models"].items():
                t0 = time.time()
                runs = [train.train_graph_fold(graph_arrays, graphs, cfg, f, st.seed) for f in range(folds)]
                torch.save(runs[0].state_dict, out / f"{name}.pt")
                acc, acc_std = mean_std([r.test_accuracy for r in runs])
                graph_metrics[name] = {
                    **cfg, "dataset": graph_arrays.name, "accuracy": acc, "accuracy_std": acc_std,
                    "fold_accuracies": [round(r.test_accuracy, 5) for r in runs],
                    "train_accuracy": mean_std([r.train_accuracy for r in runs])[0],
                    "params": models.count_params(models.build_graph_model(cfg, graph_arrays.x.shape[1], graph_arrays.num_classes)),
                    "train_seconds": round(time.time() - t0, 2), "file": f"{args.out}/{name}.pt",
                    "size_bytes": (out / f"{name}.pt").stat().st_size,
                    "protocol": f"stratified {folds}-fold cross-validation (seed {st.seed}); test fold read after the last epoch",
                }  # fmt: skip
                saved[name] = {**cfg, "task": "graph", "in_dim": int(graph_arrays.x.shape[1]), "out_dim": graph_arrays.num_classes}
                log.info("gnn_train: %s on %s: %.2f +- %.2f %% over %d folds (%.0f s)", name, graph_arrays.name,
                         100 * acc, 100 * acc_std, folds, time.time() - t0)  # fmt: skip
            np.savez(out / "node_logits.npz", **logits)
            io.write_json(out / "configs.json", saved)
        metrics = {"seeds": seeds, "node": node_metrics, "graph": graph_metrics}
        st.finish(metrics, args.metrics, artifacts=[Path(args.out) / "configs.json"], series=curves)


if __name__ == "__main__":
    main()
