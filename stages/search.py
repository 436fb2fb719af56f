"""Stage `search`: hardware-aware search of the student architecture, before `distill` trains it.

keras-tuner (oracle `search.oracle`) proposes student hyperparameters; each trial is judged on
its int8 TFLite file (pipelines/vision/search/). Writes the best hyperparameters as the JSON
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
import time
from pathlib import Path

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.stage import Stage

log = logging.getLogger("edgesmith.search")


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
    started = time.time()
    with Stage("search", args.params, sections=sections, inputs={"data": args.data}) as st:
        import numpy as np

        from pipelines.common import plots, report
        from pipelines.edge import bench
        from pipelines.vision import search
        from pipelines.vision.data import Dataset
        from pipelines.vision.student import build_student, resolve_arch

        settings, student, profiles = st.params["search"], st.params["student"], st.params["devices"]["profiles"]
        seed = st.seed if settings["seed"] is None else settings["seed"]
        ds = Dataset.load(args.data)
        shape, classes = tuple(ds.x_train.shape[1:]), len(ds.class_names)
        space = search.search_space(settings, shape, student)
        order = np.random.default_rng(seed).permutation(len(ds.x_train))
        take = order[: settings["train_samples"]] if settings["train_samples"] else order
        data = {"x_train": ds.x_train[take], "y_train": ds.y_train[take], "x_val": ds.x_val, "y_val": ds.y_val}
        bench_settings = {**bench.settings(st.params["benchmark"]), "warmup_runs": 10, "min_runs": settings["bench_runs"],
                          "min_seconds": settings["bench_seconds"]}  # fmt: skip
        directory = Path(args.tuner_dir)
        project = search.project_name(settings, student, seed, args.data)
        probe = search.probe_batch(shape)

        def fingerprint(values: dict) -> str:
            build = lambda: build_student(shape, classes, {**student, **search.arch_from_values(values)})  # noqa: E731
            return search.fingerprint(search.build_fingerprinted(build), probe)

        me = search.role()
        current = search.values_of(resolve_arch(shape, student), space)  # evolution starts from the current student when the space has it
        deadline = started + settings["max_search_seconds"] if settings["max_search_seconds"] else None
        oracle = search.make_oracle(settings, space, seed, fingerprint=fingerprint, initial=[current] if current else [],
                                    deadline=deadline)  # fmt: skip
        tuner = search.ArchTuner(data, student, settings, profiles[settings["device"]], bench_settings, seed, oracle=oracle,
                                 directory=str(directory), project_name=project, overwrite=False)  # fmt: skip
        screening: list[dict] = []
        if isinstance(oracle, search.EvolutionOracle) and me in ("single", "chief"):
            oracle.feasible_fn = tuner.feasible  # mutations over a limit are skipped, never trials
            if settings["screen_candidates"]:
                screening = search.screened(directory / project, tuner, space, seed, exclude=[current] if current else [])
                oracle.initial.extend(v for v in search.shortlist(screening) if v != current)
        for limit, how in tuner.auto.items():
            log.info("search: search.%s auto = %s, the default student's %s at %s x (1 + %g)", limit, f"{how['value']:,}",
                     f"{how['default_student']:,}", "x".join(map(str, shape)), how["margin"])  # fmt: skip
        settings = tuner.p
        trials = getattr(tuner.oracle, "trials", {})  # a worker's oracle is a client of the chief's: no trials here
        done_before = sum(t.status in ("COMPLETED", "FAILED") for t in trials.values())
        log.info("search: %s, project %s, %d trials already done; oracle %s, objective %s, %d trials", me,
                 directory / project, done_before, settings["oracle"], settings["objective"], settings["max_trials"])  # fmt: skip
        tuner.search(verbose=0)
        search_s = time.time() - started  # screening included
        if me not in ("single", "chief"):
            log.info("search: worker %s finished (%.0f s); the chief writes the outputs", me, search_s)
            return
        tuner.save()  # a rerun must not repeat the last trial
        rows = search.collect(directory / project, tuner.oracle)
        best = search.best(rows, settings["choose"])
        if best is None:
            raise UserError(f"search: none of {len(rows)} trials completed ({sum(r['status'] == 'infeasible' for r in rows)}"
                            " infeasible): loosen the search.max_* limits or widen the space")  # fmt: skip
        named = [{**r, "name": r["trial_id"], "accuracy": r.get("val_accuracy")} for r in rows]
        # the front over what the choice ranks by (NASWOT or the trial's accuracy), target latency and size
        ranked = "proxy" if settings["choose"] == "proxy" else "accuracy"
        front = report.pareto_front([{**r, "accuracy": r[ranked]} for r in named if r["status"] == "completed"
                                     and r.get(ranked) is not None], ("latency_ms", "size_bytes"))  # fmt: skip
        for r in rows:
            r["pareto"] = r["trial_id"] in front
        chosen = dict(best["arch"])
        io.write_json(args.out, search.chosen(best, settings))
        with io.atomic_dir(args.plots) as out:
            (out / "trials.csv").write_text(io.csv_text([search.csv_row(r) for r in rows], search.CSV_COLUMNS))
            if screening:
                (out / "screening.csv").write_text(io.csv_text([search.screen_row(r) for r in screening],
                                                               search.SCREEN_COLUMNS))  # fmt: skip
            latency = " (this host, p50)" if settings["latency_source"] == "measured" else f" ({settings['device']})"
            by = "NASWOT" if ranked == "proxy" else "accuracy"
            plots.plot_trials(named, front, best["trial_id"], out / "trials.png", front_label=f"Pareto front ({by}, latency, size)",
                              cost_label=f"{settings['latency_source']} latency, ms{latency}")  # fmt: skip
        dedup = getattr(tuner.oracle, "deduplicated", {"hyperparameters": 0, "fingerprint": 0})
        metrics = search.summary(rows, chosen, front, settings, dedup, done_before, search_s, directory / project,
                                 tuner.default_costs, screening, getattr(tuner.oracle, "over_limits", 0),
                                 search.values_hash(current) if current else None)  # fmt: skip
        metrics["auto_limits"] = tuner.auto
        metrics["stem_downsamples"] = space["stem_downsamples"]
        log.info("search: best trial %s (score %.4f, val accuracy %.4f, %.4f ms, %d bytes) of %d, %d infeasible, "
                 "%d deduplicated: %s", best["trial_id"], best["score"], best["val_accuracy"], best["latency_ms"],
                 best["size_bytes"], len(rows), metrics["infeasible"], metrics["deduplicated"], chosen)  # fmt: skip
        log.info("search: front of %d trials, hypervolume %.4f; NASWOT vs trained accuracy: Spearman %s over %d trials",
                 len(front), metrics["hypervolume"], metrics["proxy_correlation"]["spearman_val_accuracy"],
                 metrics["proxy_correlation"]["trials"])  # fmt: skip
        parent = st.finish(metrics, args.metrics, artifacts=[args.out, args.plots])
        if parent:  # each trial becomes a child run of the stage's run
            for r in rows:
                st.log_run(f"search/trial_{r['trial_id']}", search.trial_metrics(r), extra_params={"trial": r["arch"]},
                           extra_tags={"mlflow.parentRunId": parent, "edgesmith.trial_status": r["status"]})  # fmt: skip


if __name__ == "__main__":
    main()
