"""Stage `gnn_search`: keras-tuner searches conv type, depth, width, heads, dropout, learning rate and
weight decay of a node classifier (PyG, trained in `GNNTuner.run_trial`), scored on validation
accuracy under a parameter and time limit. Trials are MLflow child runs of the stage's run."""

from __future__ import annotations

import argparse
import logging
import tempfile

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.gnn_search")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.gnn_search", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="the node dataset from graph_data (node.npz)")
    ap.add_argument("--out", required=True, help="the best configuration (.json), a gnn_train.node_models entry")
    ap.add_argument("--metrics", required=True, help="metrics/gnn_search.json")
    args = ap.parse_args(argv)
    with Stage("gnn_search", args.params, sections=["graph", "gnn_search"], inputs={"data": args.data}) as st:
        import torch

        from pipelines.graph import search, store, train

        settings = st.params["gnn_search"]
        space = search.search_space(settings)
        torch.set_num_threads(st.params["graph"]["torch_threads"])

        arrays = store.NodeArrays.load(args.data)
        data = train.node_tensors(arrays)
        with tempfile.TemporaryDirectory(prefix="gnn_search-") as workdir:  # keras-tuner's trial files
            trials = search.run_search(data, settings, space, st.seed, workdir)
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
            "oracle": settings["oracle"],
            "trials": len(trials),
            "completed": status.count("COMPLETED"),
            "failed": status.count("FAILED"),
            "best_trial": best["trial_id"],
            "best_val_accuracy": best["metrics"][search.OBJECTIVE],
            "best_config": best["config"],
            "all_trials": trials,
        }
        log.info("gnn_search: best trial %s, val accuracy %.4f: %s", best["trial_id"],
                 metrics["best_val_accuracy"], best["config"])  # fmt: skip
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
