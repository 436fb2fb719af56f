"""Stage `search`: hardware-aware search of the student architecture, before `distill` trains it.

keras-tuner (oracle `search.oracle`) proposes student hyperparameters; each trial is judged on
its int8 TFLite file (pipelines/vision/search.py). Writes the best hyperparameters as the JSON
`distill --arch` reads, every trial as CSV, the Pareto front over accuracy, latency and size, a
PNG of the trials, and metrics/search.json; each trial is an MLflow child run of the stage's run.

Resumable: keras-tuner's project folder lives under `--tuner-dir` (kept out of DVC's outputs and
git), named by a hash of everything that decides the trials, so a search killed halfway continues
from its completed trials on the next run. Distributed: with KERASTUNER_TUNER_ID,
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set (`make search-distributed`), the `chief`
serves the oracle and writes the outputs; workers (`tuner0`, ...) only run trials.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from pipelines.common import io
from pipelines.common.errors import ParamsError, UserError
from pipelines.common.params import comma_list, params_hash
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.search")
CSV_COLUMNS = (
    "trial_id", "status", "rejected", "score", "accuracy", "latency_ms", "measured_latency_ms",
    "predicted_latency_ms", "size_bytes", "params", "macs", "memory_access_bytes", "pareto", "depth", "ds_widths",
    "kernel_size", "block", "expansion", "squeeze_excite", "stem_stride", "width_multiplier", "head", "train_seconds", "seconds",
)  # fmt: skip
# The search params that do not change which trials run or what they score.
NOT_HASHED = ("max_trials", "bench_runs", "bench_seconds")


def search_space(p: dict) -> dict:
    """The search space from params, with the checks the schema cannot express."""
    from pipelines.vision.search import SEARCH_BLOCKS, SEARCH_HEADS

    space = {k: p[k] for k in ("kernel_sizes", "expansions", "squeeze_excite", "stem_stride", "width_percents", "depths", "widths")}
    for key, allowed in (("blocks", SEARCH_BLOCKS), ("heads", SEARCH_HEADS)):
        space[key] = comma_list(p[key], f"search.{key}", allowed, required=True)
    if p["tournament"] > p["population"]:
        raise ParamsError(f"search.tournament ({p['tournament']}) must be <= search.population ({p['population']})")
    return space


def role() -> str:
    """`chief`, a worker's id (`tuner0`, ...), or `single` when no distributed setting is given."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return tuner_id if tuner_id and "KERASTUNER_ORACLE_IP" in os.environ else "single"


def csv_row(r: dict) -> dict:
    arch = r["arch"]
    return {**{k: r.get(k) for k in CSV_COLUMNS}, **arch, "depth": len(arch["ds_widths"]),
            "ds_widths": "-".join(map(str, arch["ds_widths"])), "accuracy": r.get("val_accuracy")}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.search", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--out", required=True, help="the best student hyperparameters (.json, what distill --arch reads)")
    ap.add_argument("--plots", required=True, help="folder for trials.csv and trials.png")
    ap.add_argument("--metrics", required=True, help="metrics/search.json")
    ap.add_argument("--tuner-dir", default=".tuner", help="keras-tuner's project folders (persistent, not a DVC output)")
    args = ap.parse_args(argv)
    sections = ["search", "student", "benchmark", "devices", "quantize"]
    with Stage("search", args.params, sections=sections, inputs={"data": args.data}) as st:
        p, student = st.params["search"], st.params["student"]
        space = search_space(p)
        modes = comma_list(st.params["quantize"]["chain_modes"], "quantize.chain_modes")
        if p["squeeze_excite"] != "never" and "qat" in modes:
            raise ParamsError("search.squeeze_excite must be 'never' while quantize.chain_modes has qat: tfmot's "
                              "quantization-aware training has no rule for squeeze-excite's Multiply layer")  # fmt: skip
        profiles = st.params["devices"]["profiles"]
        if p["device"] not in profiles:
            raise ParamsError(f"search.device must be one of {', '.join(profiles)} (devices.profiles), got {p['device']!r}")
        import numpy as np

        from pipelines.edge import bench
        from pipelines.vision import convert, distill, search, train
        from pipelines.vision.data import Dataset

        seed = st.seed if p["seed"] is None else p["seed"]
        ds = Dataset.load(args.data)
        order = np.random.default_rng(seed).permutation(len(ds.x_train))
        take = order[: p["train_samples"]] if p["train_samples"] else order
        data = {"x_train": ds.x_train[take], "y_train": ds.y_train[take], "x_val": ds.x_val, "y_val": ds.y_val}
        bench_settings = {**bench.settings(st.params["benchmark"]), "warmup_runs": 10, "min_runs": p["bench_runs"],
                          "min_seconds": p["bench_seconds"]}  # fmt: skip
        decides = {k: v for k, v in p.items() if k not in NOT_HASHED}
        # a trial's result depends on the params, the data and the code that builds, trains and scores it
        code = {m.__name__: io.sha256_path(m.__file__)[:16] for m in (search, distill, train, convert)}
        project = "search-" + params_hash(decides, student, {"seed": seed, "data": io.sha256_path(args.data)[:16]}, code)
        directory = Path(args.tuner_dir)
        shape, classes = tuple(ds.x_train.shape[1:]), len(ds.class_names)
        probe = search.probe_batch(shape)

        def fingerprint(values: dict) -> str:
            build = lambda: distill.build_student(shape, classes, {**student, **search.arch_from_values(values)})  # noqa: E731
            return search.fingerprint(search.build_fingerprinted(build), probe)

        me = role()
        current = search.values_of(student, space)  # evolution starts from the current student when the space has it
        oracle = search.make_oracle(p, space, seed, fingerprint=fingerprint, initial=[current] if current else [])
        tuner = search.ArchTuner(data, student, p, profiles[p["device"]], bench_settings, seed, oracle=oracle,
                                 directory=str(directory), project_name=project, overwrite=False)  # fmt: skip
        trials = getattr(tuner.oracle, "trials", {})  # a worker's oracle is a client of the chief's: no trials here
        done_before = sum(t.status in ("COMPLETED", "FAILED") for t in trials.values())
        log.info("search: %s, project %s, %d trials already done; oracle %s, objective %s, %d trials", me,
                 directory / project, done_before, p["oracle"], p["objective"], p["max_trials"])  # fmt: skip
        t0 = time.time()
        tuner.search(verbose=0)
        search_s = time.time() - t0
        if me not in ("single", "chief"):
            log.info("search: worker %s finished (%.0f s); the chief writes the outputs", me, search_s)
            return
        tuner.save()  # a rerun must not repeat the last trial
        rows = search.collect(directory / project, tuner.oracle)
        best = search.best(rows)
        n_infeasible = sum(r["status"] == "infeasible" for r in rows)
        if best is None:
            raise UserError(f"search: none of {len(rows)} trials completed ({n_infeasible} infeasible): loosen "
                            "search.max_* budgets or widen the space")  # fmt: skip
        from pipelines.common import report

        ranked = [{**r, "name": r["trial_id"], "accuracy": r.get("val_accuracy")} for r in rows
                  if r["status"] == "completed"]  # fmt: skip
        front = report.pareto_front(ranked, ("latency_ms", "size_bytes"))
        for r in rows:
            r["pareto"] = r["trial_id"] in front
        chosen = {k: v for k, v in best["arch"].items()}
        io.write_json(args.out, {"student": chosen, "trial_id": best["trial_id"], "score": best["score"],
                                 "val_accuracy": best["val_accuracy"], "latency_ms": best["latency_ms"],
                                 "size_bytes": best["size_bytes"], "objective": p["objective"]})  # fmt: skip
        plots = Path(args.plots)
        with io.atomic_dir(plots) as out:
            (out / "trials.csv").write_text(report.csv_text([csv_row(r) for r in rows], CSV_COLUMNS))
            report.plot_trials([{**r, "name": r["trial_id"], "accuracy": r.get("val_accuracy")} for r in rows], front,
                               best["trial_id"], out / "trials.png",
                               cost_label=f"{p['latency_source']} latency, ms"
                               + (f" ({p['device']})" if p["latency_source"] == "predicted" else " (this host, p50)"))  # fmt: skip
        dedup = getattr(tuner.oracle, "deduplicated", {"hyperparameters": 0, "fingerprint": 0})
        metrics = {
            "oracle": p["oracle"],
            "objective": p["objective"],
            "latency_source": p["latency_source"],
            "device": p["device"] if p["latency_source"] == "predicted" else "host",
            "trials": len(rows),
            "completed": sum(r["status"] == "completed" for r in rows),
            "infeasible": n_infeasible,
            "infeasible_before_training": sum(r.get("rejected") == "before training" for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows),
            "deduplicated": sum(dedup.values()),
            "deduplicated_by": dict(dedup),
            "resumed_trials": done_before,
            "search_seconds": round(search_s, 1),
            "trial_seconds": round(sum(r.get("seconds") or 0 for r in rows), 1),
            "best_trial": best["trial_id"],
            "best_score": best["score"],
            "best_val_accuracy": best["val_accuracy"],
            "best_latency_ms": best["latency_ms"],
            "best_size_bytes": best["size_bytes"],
            "best_macs": best["macs"],
            "best_arch": chosen,
            "pareto_front": front,
            "budgets": {k: p[k] for k in search.BUDGETS} if p["objective"] == "constrained" else {},
            "project": str(directory / project),
        }
        log.info("search: best trial %s (score %.4f, val accuracy %.4f, %.4f ms, %d bytes) of %d, %d infeasible, "
                 "%d deduplicated: %s", best["trial_id"], best["score"], best["val_accuracy"], best["latency_ms"],
                 best["size_bytes"], len(rows), n_infeasible, metrics["deduplicated"], chosen)  # fmt: skip
        parent = st.finish(metrics, args.metrics, artifacts=[args.out, plots])
        if parent:  # each trial becomes a child run of the stage's run
            for r in rows:
                numbers = {k: r[k] for k in CSV_COLUMNS if isinstance(r.get(k), (int, float)) and k != "trial_id"}
                st.log_run(
                    f"search/trial_{r['trial_id']}", {**numbers, "val_accuracy": r.get("val_accuracy"),
                                                      "infeasible": float(r["status"] == "infeasible")},
                    extra_tags={"mlflow.parentRunId": parent, "edgesmith.trial_status": r["status"]},
                    extra_params={"trial": r["arch"]},
                )  # fmt: skip


if __name__ == "__main__":
    main()
