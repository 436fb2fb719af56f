"""Stage `gnn_search`: keras-tuner searches conv type, depth, width, heads, dropout, learning rate and
weight decay of a node classifier (PyG, trained in `GNNTuner.run_trial`), scored on validation
accuracy (less an optional size term) under a parameter limit, a per-trial and a whole-search time
limit. The project folder is kept, so a killed search resumes. Trials are MLflow child runs."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_search")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_search", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="graph_data's folder (node.npz)")
    ap.add_argument("--out", required=True, help="the best configuration (.json), a gnn_train.node_models entry")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_search.json")
    ap.add_argument("--tuner-dir", required=True, help="keras-tuner's kept project folders (a killed search resumes)")
    args = ap.parse_args(argv)
    with Stage("gnn_search", args.params, sections=["graph", "gnn_search"], inputs={"data": args.data}) as st:
        import torch

        from pipelines.graph import search, store, train

        settings = st.params["gnn_search"]
        space = search.search_space(settings)
        arrays, _ = store.load_halves(args.data)
        if arrays is None:
            io.write_json(args.out, store.skipped("node"))
            st.finish(store.skipped("node"), args.metrics)
            return
        torch.set_num_threads(st.params["graph"]["torch_threads"])
        data = train.node_tensors(arrays)
        auto = settings["max_params"] == "auto"
        max_params = search.auto_max_params(arrays.num_features, arrays.num_classes) if auto else settings["max_params"]
        if auto:
            log.info("gnn_search: max_params auto = %s for %d features and %d classes", f"{max_params:,}",
                     arrays.num_features, arrays.num_classes)  # fmt: skip
        project = search.project_name(settings, st.seed, Path(args.data) / store.NODE_FILE)
        t0 = time.time()
        trials = search.run_search(data, settings, space, st.seed, args.tuner_dir, project, max_params)
        search_s = time.time() - t0
        best = search.best_trial(trials)
        if best is None:
            raise UserError(
                f"gnn_search: all {len(trials)} trials were rejected by the limits "
                "(raise gnn_search.max_params or gnn_search.max_trial_seconds)"
            )
        io.write_json(args.out, {**best["config"], "trial_id": best["trial_id"], "dataset": arrays.name})
        status = [t["status"] for t in trials]
        metrics = {
            "dataset": arrays.name,
            "objective": search.OBJECTIVE,
            "score": "val_accuracy - cost_weight * params / max_params",
            "cost_weight": settings["cost_weight"],
            "oracle": settings["oracle"],
            "max_params": max_params,
            "max_params_rule": "auto: 128 x (features + classes + 128)" if auto else "gnn_search.max_params",
            "max_search_seconds": settings["max_search_seconds"],
            "search_seconds": round(search_s, 1),
            "project": f"{args.tuner_dir}/{project}",
            "trials": len(trials),
            "completed": status.count("COMPLETED"),
            "failed": status.count("FAILED"),
            "best_trial": best["trial_id"],
            "best_score": best["metrics"][search.OBJECTIVE],
            "best_val_accuracy": best["metrics"]["val_accuracy"],
            "best_config": best["config"],
            "all_trials": trials,
        }
        log.info("gnn_search: best trial %s of %d (%.0f s), validation accuracy %.4f: %s", best["trial_id"], len(trials),
                 search_s, metrics["best_val_accuracy"], best["config"])  # fmt: skip
        parent = st.finish(metrics, args.metrics, artifacts=[args.out])
        if parent:  # each trial becomes a child run of the stage's run
            for t in trials:
                st.log_run(
                    f"gnn_search/trial_{t['trial_id']}", {**t["metrics"], "failed": float(t["status"] != "COMPLETED")},
                    extra_tags={"mlflow.parentRunId": parent, "edgesmith.trial_status": t["status"]},
                    extra_params={"trial": t["config"]},
                )  # fmt: skip


if __name__ == "__main__":
    main()
