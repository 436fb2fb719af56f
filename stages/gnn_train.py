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

        from pipelines.graph import store

        torch.set_num_threads(st.params["graph"]["torch_threads"])
        settings = st.params["gnn_train"]
        node_arrays, graph_arrays = store.load_halves(args.data)
        seeds = [st.seed + i for i in range(settings["seeds"])]
        saved: dict[str, dict] = {}
        curves: dict[str, list[float]] = {}  # the deployed model's per-epoch figures of each model
        with io.atomic_dir(args.out) as out:
            node_metrics = train_node_models(node_arrays, settings, args.search, seeds, out, args.out, saved, curves) if node_arrays else {}
            graph_metrics = train_graph_models(graph_arrays, settings, st.seed, out, args.out, saved, curves) if graph_arrays else {}
            io.write_json(out / "configs.json", saved)
        metrics = {"seeds": seeds, "node": node_metrics, "graph": graph_metrics}
        st.finish(metrics, args.metrics, artifacts=[Path(args.out) / "configs.json"], series=curves)


def train_node_models(node_arrays, settings: dict, search_path: str, seeds: list[int], out: Path, out_name: str,
                      saved: dict, curves: dict) -> dict:  # fmt: skip
    """Every node model (and the search's best) over `seeds`; the first seed's weights saved and
    every seed's logits kept (node_logits.npz) for distillation."""
    import torch

    from pipelines.graph import models, train

    data = train.node_tensors(node_arrays)
    configs = dict(settings["node_models"])
    if settings["include_searched"]:
        searched = io.read_json(search_path)
        if "skipped" not in searched:
            missing = [k for k in NODE_KEYS if k not in searched]
            if missing:
                raise UserError(f"{search_path}: not a gnn_search result (missing {', '.join(missing)}); run gnn_search again")
            configs["searched"] = {k: searched[k] for k in NODE_KEYS}
    node_metrics, logits = {}, {}
    for name, cfg in configs.items():
        runs = []
        for s in seeds:
            model, run = train.fit_node_model(cfg, data, s)
            runs.append(run)
            log.info("gnn_train: %s seed %d: test %.4f, val %.4f (epoch %d, %.1f s)", name, s,
                     run.test_accuracy, run.val_accuracy, run.best_epoch, run.seconds)  # fmt: skip
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
            "train_seconds": round(sum(r.seconds for r in runs), 2), "file": f"{out_name}/{name}.pt",
            "size_bytes": (out / f"{name}.pt").stat().st_size,
        }  # fmt: skip
        saved[name] = {**cfg, "task": "node", "in_dim": data.num_features, "out_dim": data.num_classes}
        log.info("gnn_train: %s on %s: %.2f +- %.2f %% over %d seeds", name, node_arrays.name, 100 * acc,
                 100 * acc_std, len(seeds))  # fmt: skip
    np.savez(out / "node_logits.npz", **logits)
    return node_metrics


def train_graph_models(graph_arrays, settings: dict, seed: int, out: Path, out_name: str, saved: dict, curves: dict) -> dict:
    """Every graph classifier scored by stratified k-fold cross-validation, then the deployed one
    trained (`train.train_deployed_graph_model`) and saved with its weights as NumPy arrays (for the
    TensorFlow export) and its PyTorch logits on the test graphs (graph_reference.npz)."""
    import torch

    from pipelines.graph import models, train

    graph_metrics, reference = {}, {}
    graphs = train.graph_data_list(graph_arrays)
    folds = int(graph_arrays.folds.max() + 1)
    in_dim, classes = int(graph_arrays.x.shape[1]), graph_arrays.num_classes
    for name, cfg in settings["graph_models"].items():
        t0 = time.time()
        runs = [train.train_graph_fold(graph_arrays, graphs, cfg, f, seed) for f in range(folds)]
        acc, acc_std = mean_std([r.test_accuracy for r in runs])
        log.info("gnn_train: %s on %s: %.2f +- %.2f %% over %d folds (%.0f s)", name, graph_arrays.name,
                 100 * acc, 100 * acc_std, folds, time.time() - t0)  # fmt: skip
        deployed = train.train_deployed_graph_model(graph_arrays, graphs, cfg, seed)
        torch.save(deployed.model.state_dict(), out / f"{name}.pt")
        np.savez(out / f"{name}_weights.npz", **{k: v.numpy() for k, v in deployed.model.state_dict().items()})
        reference[f"{name}_logits"] = deployed.test_logits
        reference["test_index"] = deployed.test_index
        curves[f"{name}/val_accuracy"] = deployed.val_curve
        graph_metrics[name] = {
            **cfg, "dataset": graph_arrays.name, "accuracy": acc, "accuracy_std": acc_std,
            "fold_accuracies": [round(r.test_accuracy, 5) for r in runs],
            "train_accuracy": mean_std([r.train_accuracy for r in runs])[0],
            "params": models.count_params(deployed.model),
            "train_seconds": round(time.time() - t0, 2), "file": f"{out_name}/{name}.pt",
            "size_bytes": (out / f"{name}.pt").stat().st_size,
            "protocol": f"stratified {folds}-fold cross-validation (seed {seed}); test fold read after the last epoch",
            "deployed": {
                "test_accuracy": round(deployed.test_accuracy, 5), "test_graphs": int(len(deployed.test_index)),
                "best_epoch": deployed.best_epoch, "val_accuracy": round(deployed.val_accuracy, 5),
                "seconds": round(deployed.seconds, 2),
                "protocol": "epoch chosen on fold 1 (validation) after training on folds 2+, then retrained on "
                            "folds 1+ for that many epochs; tested on fold 0 (the test graphs)",
            },
        }  # fmt: skip
        saved[name] = {**cfg, "task": "graph", "in_dim": in_dim, "out_dim": classes, "max_nodes": graph_arrays.max_nodes}
        log.info("gnn_train: %s deployed: epoch %d (val %.4f), test %.4f on %d graphs", name, deployed.best_epoch,
                 deployed.val_accuracy, deployed.test_accuracy, len(deployed.test_index))  # fmt: skip
    np.savez(out / "graph_reference.npz", **reference)
    return graph_metrics


if __name__ == "__main__":
    main()
