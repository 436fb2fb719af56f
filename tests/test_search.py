"""The `search` stage: the student family's new dimensions, the evolution oracle, objectives and
limits on hand-made numbers, and (slow) the stage end to end, resumed and distributed.

Covered: the default student's parameter count unchanged by the new dimensions, each dimension's
effect on the network, the arch JSON read back by `distill`, the MnasNet reward and the limits on
hand numbers; the evolution oracle (the tournament winner gets exactly one hyperparameter mutated,
aging, infeasible trials outside the population, conditional hyperparameters, duplicates by hash
and by fingerprint skipped and counted, the current student tried first). Slow: the stage on tiny
data (infeasible trials rejected before training and counted, the outputs' contract, a rerun
retrains nothing), `kill -9` mid-search and resume, and a chief with two workers on 127.0.0.1
running every trial exactly once.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, make_images, run_env

DEFAULT_STUDENT_PARAMS = 46_554  # the default params.yaml student (16-32 stem, DS96, DS192) on 28x28x1, 10 classes


def params_yaml() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


# ---- the student family ----


def test_default_student_is_unchanged_by_the_new_dimensions():
    from pipelines.vision.student import STUDENT_DEFAULTS, build_student, resolve_arch

    student = params_yaml()["student"]
    assert {k: resolve_arch((28, 28, 1), student)[k] for k in STUDENT_DEFAULTS} == STUDENT_DEFAULTS
    assert build_student((28, 28, 1), 10, student).count_params() == DEFAULT_STUDENT_PARAMS
    old_keys = {k: student[k] for k in ("stem_widths", "ds_widths", "head", "dropout", "bn_momentum")}
    assert build_student((28, 28, 1), 10, old_keys).count_params() == DEFAULT_STUDENT_PARAMS


@pytest.mark.parametrize("side, factor, block_px", [(28, 1, 7), (32, 1, 8), (64, 2, 8), (96, 2, 12), (224, 4, 14)])
def test_stem_downsampling_brings_any_input_to_small_block_maps(side, factor, block_px):
    from pipelines.vision.search import search_space
    from pipelines.vision.student import build_student, resolve_arch

    p = params_yaml()
    student = p["student"]
    assert resolve_arch((side, side, 3), student)["stem_downsample"] == factor
    model = build_student((side, side, 3), 5, student)
    assert model.get_layer("ds0_dw").input_shape[1:3] == (block_px, block_px)
    assert model.output_shape == (None, 5)
    assert min(search_space(p["search"], (side, side, 3), student)["stem_downsamples"]) == factor
    fixed = build_student((side, side, 3), 5, {**student, "stem_downsample": 1})
    assert fixed.get_layer("ds0_dw").input_shape[1:3] == (side // 4, side // 4)


def test_a_stem_downsample_the_stem_cannot_give_is_one_line():
    from pipelines.common.errors import UserError
    from pipelines.vision.student import build_student

    student = {**params_yaml()["student"], "stem_downsample": 8}  # two stem convs: at most 4
    with pytest.raises(UserError, match="stem_downsample must be 'auto' or a power of 2 up to 4"):
        build_student((96, 96, 3), 5, student)


def test_each_dimension_changes_the_network_as_documented():
    from pipelines.vision.student import build_student, scaled_width

    base = {"stem_widths": [8], "ds_widths": [16], "head": "gap", "dropout": 0.0, "bn_momentum": 0.9}

    def layers(**over):
        return {type(layer).__name__: layer for layer in build_student((16, 16, 1), 10, {**base, **over}).layers}

    assert layers(kernel_size=5)["DepthwiseConv2D"].kernel_size == (5, 5)
    assert "DepthwiseConv2D" not in layers(block="standard")
    inverted = build_student((16, 16, 1), 10, {**base, "stem_widths": [16], "expansion": 4})
    assert inverted.get_layer("ds0_expand").filters == 64 and "ds0_residual" in [ly.name for ly in inverted.layers]
    assert {"Multiply", "Reshape"} <= set(layers(squeeze_excite=True))
    assert scaled_width(64, 0.5) == 32 and scaled_width(16, 0.75) == 16 and scaled_width(12, 1.0) == 12
    half = build_student((16, 16, 1), 10, {**base, "width_multiplier": 0.5})
    assert half.get_layer("ds0_pw").filters == 8


def test_search_arch_json_round_trips_into_build_student(tmp_path):
    from pipelines.vision import search
    from pipelines.vision.student import build_student, student_arch

    student = params_yaml()["student"]
    values = {"kernel_size": 5, "block": "separable", "expansion": 2, "squeeze_excite": True, "stem_stride": True, "width_percent": 75,
              "depth": 2, "width0": 32, "width1": 64, "head": "gap"}  # fmt: skip
    arch = search.arch_from_values(values)
    (tmp_path / "best.json").write_text(json.dumps({"student": arch, "trial_id": "03", "score": 0.8}))
    read = student_arch(student, str(tmp_path / "best.json"))
    assert read == {**student, **arch}
    direct = build_student((28, 28, 1), 10, {**student, **arch})
    assert build_student((28, 28, 1), 10, read).count_params() == direct.count_params()
    assert read["expansion"] == 2 and read["stem_stride"] is True and read["width_multiplier"] == 0.75 and read["ds_widths"] == [32, 64]
    standard = search.arch_from_values({**values, "block": "standard"})
    assert standard["expansion"] == 1  # expansion only means something in separable blocks


# ---- objectives and limits ----


def test_mnas_reward_on_hand_numbers():
    from pipelines.vision import search

    assert search.mnas_reward(0.9, 2.0, 1.0, -0.07) == pytest.approx(0.9 * 2**-0.07)
    assert search.mnas_reward(0.9, 2.0, 1.0, -0.07) == pytest.approx(0.857374, abs=1e-6)
    assert search.mnas_reward(0.8, 1.0, 1.0, -0.07) == pytest.approx(0.8)
    assert search.mnas_reward(0.8, 0.5, 1.0, -0.07) == pytest.approx(0.8 * math.exp(0.07 * math.log(2)))
    p = {"mnas_target_ms": 0.5, "mnas_weight": -0.07}
    assert search.objective_score("mnas", 0.9, 1.0, p) == pytest.approx(0.857374, abs=1e-6)
    assert search.objective_score("accuracy", 0.9, 1.0, p) == 0.9
    assert search.objective_score("constrained", 0.9, 1.0, p) == 0.9


def test_limits_are_hard_only_for_the_constrained_objective():
    from pipelines.vision import search

    p = {"objective": "constrained", "max_latency_ms": 0.5, "max_size_bytes": None, "max_memory_access_bytes": 1000,
         "max_macs": None}  # fmt: skip
    costs = {"latency_ms": 0.6, "size_bytes": 10**9, "memory_access_bytes": 1000, "macs": 10**9}
    broken = search.over_limits(costs, p)
    assert len(broken) == 1 and "max_latency_ms" in broken[0]  # size/MACs unlimited; 1000 bytes is within 1000
    assert search.over_limits({**costs, "memory_access_bytes": 1001}, p)[1].startswith("1001 memory_access_bytes")
    assert search.over_limits(costs, {**p, "objective": "mnas"}) == []
    assert search.over_limits(costs, {**p, "objective": "accuracy"}) == []


# ---- the evolution oracle ----


def _space(hp):
    hp.Choice("a", [0, 1, 2, 3])
    hp.Choice("b", ["x", "y", "z"])
    hp.Choice("c", [10, 20])
    return hp


def _oracle(tmp_path, population=3, tournament=3, fingerprint=None, max_trials=50, space=_space):
    import keras_tuner as kt

    from pipelines.vision import search

    oracle = search.EvolutionOracle(population=population, tournament=tournament, fingerprint=fingerprint,
                                    objective=kt.Objective("score", "max"), max_trials=max_trials, seed=7,
                                    hyperparameters=space(kt.HyperParameters()),
                                    max_consecutive_failed_trials=None)  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "evo")
    return oracle


def _finish(oracle, values: dict, score: float | None):
    """Run one trial with these values through the oracle, completed with `score` (None: failed)."""
    trial = oracle.create_trial("tuner0")
    assert trial.status == "RUNNING"
    trial.hyperparameters.values.update(values)
    oracle._record_values(trial)
    if score is None:
        trial.status = "FAILED"
    else:
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
    oracle.end_trial(trial)
    return trial


def _differences(a: dict, b: dict) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def test_evolution_mutates_exactly_one_hyperparameter_of_the_tournament_winner(tmp_path):
    import random

    oracle = _oracle(tmp_path, population=3, tournament=3)
    members = [({"a": 0, "b": "x", "c": 10}, 0.5), ({"a": 3, "b": "z", "c": 20}, 0.9), ({"a": 1, "b": "y", "c": 10}, 0.7)]
    for values, score in members:
        _finish(oracle, values, score)
    rng = random.Random(0)
    for _ in range(30):  # the tournament draws the whole population: the winner is always the best (0.9)
        child, mutated = oracle.candidate(rng)
        assert mutated is not None and _differences(child, members[1][0]) == [mutated]


def test_evolution_ages_out_the_oldest_however_good(tmp_path):
    import random

    oracle = _oracle(tmp_path, population=3, tournament=3)
    champion = {"a": 0, "b": "x", "c": 10}
    _finish(oracle, champion, 0.99)  # the oldest: dies as soon as three younger trials completed
    younger = [({"a": 3, "b": "z", "c": 20}, 0.6), ({"a": 2, "b": "z", "c": 20}, 0.5), ({"a": 3, "b": "y", "c": 20}, 0.4)]
    for values, score in younger:
        _finish(oracle, values, score)
    rng = random.Random(1)
    for _ in range(30):
        child, mutated = oracle.candidate(rng)
        assert _differences(child, younger[0][0]) == [mutated]  # the best of the living, not the champion


def test_infeasible_trials_never_join_the_population(tmp_path):
    import random

    oracle = _oracle(tmp_path, population=2, tournament=2)
    _finish(oracle, {"a": 0, "b": "x", "c": 10}, 0.5)
    _finish(oracle, {"a": 3, "b": "z", "c": 20}, None)  # infeasible: FAILED, no score
    child, mutated = oracle.candidate(random.Random(0))
    assert mutated is None  # one completed trial is not a population of two yet: still random sampling
    _finish(oracle, {"a": 1, "b": "y", "c": 20}, 0.6)
    child, mutated = oracle.candidate(random.Random(0))
    assert mutated is not None and _differences(child, {"a": 1, "b": "y", "c": 20}) == [mutated]


def test_conditional_hyperparameters_follow_a_mutation(tmp_path):
    import random

    def space(hp):
        hp.Choice("block", ["standard", "separable"])
        with hp.conditional_scope("block", ["separable"]):
            hp.Choice("expansion", [2, 4])
        return hp

    oracle = _oracle(tmp_path, population=1, tournament=1, space=space)
    _finish(oracle, {"block": "standard"}, 0.5)
    child, mutated = oracle.candidate(random.Random(0))
    assert mutated == "block" and child["block"] == "separable" and child["expansion"] in (2, 4)


def test_duplicates_are_not_tried_again_and_are_counted(tmp_path):
    calls = []

    def fingerprint(values):  # a and a + 2 build "the same network"
        calls.append(values)
        return f"{values['a'] % 2}-{values['b']}-{values['c']}"

    oracle = _oracle(tmp_path, population=2, tournament=2, fingerprint=fingerprint)
    seen_hashes, seen_prints = set(), set()
    for _ in range(12):  # 24 hyperparameter sets, 12 distinct networks
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = dict(trial.hyperparameters.values)
        key, fp = json.dumps(values, sort_keys=True), fingerprint(values)
        assert key not in seen_hashes and fp not in seen_prints
        seen_hashes.add(key)
        seen_prints.add(fp)
        oracle.update_trial(trial.trial_id, {"score": 0.1 * values["a"] + (values["c"] == 20) * 0.05})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(seen_prints) == 12
    assert oracle.deduplicated["fingerprint"] > 0 and oracle.deduplicated["hyperparameters"] > 0
    # the space of networks is exhausted: the oracle stops instead of repeating one
    assert oracle.create_trial("tuner0").status == "STOPPED"
    state = oracle.get_state()
    assert state["deduplicated"] == oracle.deduplicated  # saved with the oracle: a resumed search keeps its counts


def test_fingerprint_matches_equal_networks_only():
    from pipelines.vision import search
    from pipelines.vision.student import build_student

    student = {"stem_widths": [16], "ds_widths": [48], "head": "gap", "dropout": 0.0, "bn_momentum": 0.9}
    probe = search.probe_batch((16, 16, 1))

    def fp(**arch):
        return search.fingerprint(search.build_fingerprinted(
            lambda: build_student((16, 16, 1), 10, {**student, **arch})), probe)  # fmt: skip

    # 64 x 0.75 = 48 channels and 16 x 0.75 rounds to 16: the same network as 48 x 1.0
    assert fp(ds_widths=[64], width_multiplier=0.75) == fp(ds_widths=[48])
    assert fp(ds_widths=[48]) != fp(ds_widths=[48], kernel_size=5)
    assert fp(ds_widths=[48], dropout=0.3) == fp(ds_widths=[48])  # dropout is not part of the function at inference


def test_search_space_checks(tmp_path):
    from pipelines.common.errors import ParamsError
    from pipelines.common.params import validate
    from pipelines.vision.search import search_space

    p = params_yaml()["search"]
    space = search_space(p, (28, 28, 1), params_yaml()["student"])
    assert space["blocks"] == ["separable", "standard"] and space["heads"] == ["flatten", "gap"]
    with pytest.raises(ParamsError, match="search.blocks"):
        search_space({**p, "blocks": "separable,mbconv"}, (28, 28, 1), params_yaml()["student"])
    with pytest.raises(ParamsError, match="tournament"):  # a rule between keys: the schema's
        validate({**params_yaml(), "search": {**p, "tournament": p["population"] + 1}})


def test_every_oracle_is_built_with_the_full_space():
    from pipelines.vision import search
    from pipelines.vision.search import search_space

    p = params_yaml()["search"]
    space = search_space(p, (28, 28, 1), params_yaml()["student"])
    for kind in ("evolution", "random", "bayesian", "hyperband"):
        oracle = search.make_oracle({**p, "oracle": kind}, space, 0)
        names = {hp.name for hp in oracle.hyperparameters.space}
        assert {"kernel_size", "block", "expansion", "squeeze_excite", "width_percent", "depth", "width0", "head"} <= names
        assert oracle.max_trials == p["max_trials"]


# ---- slow: the real stage on tiny data ----


def _tiny_project(tmp_path: Path, **search_overrides) -> Path:
    """A params.yaml and a tiny 16x16 dataset in tmp_path; returns the folder."""
    from pipelines.vision.data import Dataset

    x, y = make_images(480, size=16, seed=5)
    xv, yv = make_images(120, size=16, seed=6)
    Dataset(x[..., None], y.astype(np.int64), xv[..., None], yv.astype(np.int64), xv[..., None], yv.astype(np.int64),
            [str(i) for i in range(10)]).save(tmp_path / "tiny.npz")  # fmt: skip
    p = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    p["base"].update(code_root=str(ROOT), mlruns_dir=str(tmp_path / "mlruns"))
    p["student"].update(stem_widths=[4, 8], ds_widths=[16])
    p["search"].update(
        oracle="random", max_trials=4, objective="constrained", max_macs=60000, max_latency_ms=None,
        max_size_bytes=None, max_memory_access_bytes=None, epochs=1, train_samples=0, batch_size=32,
        bench_runs=10, bench_seconds=0.0, kernel_sizes=[3], blocks="standard", expansions=[1], squeeze_excite="never",
        width_percents=[100], depths=[1], widths=[8, 16, 64], heads="flatten,gap", population=2, tournament=2,
        latency_source="measured", screen_candidates=0,
    )  # fmt: skip
    p["search"].update(search_overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return tmp_path


def _stage_cmd(folder: Path) -> list[str]:
    return [sys.executable, "-m", "stages.search", "--params", str(folder / "params.yaml"), "--data",
            str(folder / "tiny.npz"), "--out", str(folder / "out" / "arch.json"), "--plots", str(folder / "out" / "plots"),
            "--metrics", str(folder / "out" / "search.json"), "--tuner-dir", str(folder / ".tuner")]  # fmt: skip


def _env() -> dict:
    env = run_env()
    env["PYTHONPATH"] = str(ROOT)
    return env


def _project(folder: Path) -> Path:
    (project,) = (folder / ".tuner").iterdir()
    return project


def _records(folder: Path) -> dict[str, dict]:
    project = _project(folder)
    return {d.name: json.loads((d / "record.json").read_text()) for d in sorted(project.glob("trial_*"))
            if (d / "record.json").is_file()}  # fmt: skip


def _attempts(folder: Path) -> dict[str, list[str]]:
    project = _project(folder)
    return {d.name: (d / "attempts.log").read_text().splitlines() for d in sorted(project.glob("trial_*"))
            if (d / "attempts.log").is_file()}  # fmt: skip


def _check_outputs(folder: Path, trials: int) -> dict:
    from pipelines.vision.student import build_student, student_arch

    p = yaml.safe_load((folder / "params.yaml").read_text())
    metrics = json.loads((folder / "out" / "search.json").read_text())
    assert metrics["trials"] == trials
    assert metrics["completed"] + metrics["infeasible"] + metrics["failed"] == trials
    for key in ("best_trial", "infeasible", "deduplicated", "search_seconds", "pareto_front"):
        assert key in metrics
    arch = student_arch(p["student"], str(folder / "out" / "arch.json"))
    assert arch == {**p["student"], **metrics["best_arch"]}
    assert build_student((16, 16, 1), 10, arch).count_params() > 0
    lines = (folder / "out" / "plots" / "trials.csv").read_text().splitlines()
    assert len(lines) == trials + 1 and lines[0].startswith("trial_id,status")
    assert (folder / "out" / "plots" / "trials.png").stat().st_size > 1000
    assert metrics["best_trial"] in metrics["pareto_front"]
    return metrics


@pytest.mark.slow
def test_stage_rejects_infeasible_trials_before_training_and_writes_the_contract(tmp_path):
    folder = _tiny_project(tmp_path, max_trials=6)  # 3 widths x 2 heads: width 64 breaks max_macs
    out = subprocess.run(_stage_cmd(folder), cwd=folder, env=_env(), capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _check_outputs(folder, 6)
    records = _records(folder)
    infeasible = [r for r in records.values() if r["status"] == "infeasible"]
    assert len(infeasible) == metrics["infeasible"] == 2
    for r in infeasible:  # rejected from the untrained int8 conversion: never trained, no trained file
        assert r["arch"]["ds_widths"] == [64] and r["rejected"] == "before training" and r["macs"] > 60000
        assert not (_project(folder) / f"trial_{r['trial_id']}" / "model_int8.tflite").exists()
    assert metrics["completed"] == 4 and all(r["macs"] <= 60000 for r in records.values() if r["status"] == "completed")
    assert metrics["best_arch"]["ds_widths"] != [64]
    from pipelines.common import tracking

    runs = tracking.find_runs("edgesmith-vision-quick", folder / "mlruns")
    parent = next(r for r in runs if r["name"] == "search")
    children = [r for r in runs if r["name"].startswith("search/trial_")]
    assert len(children) == 6 and all(r["tags"]["mlflow.parentRunId"] == parent["run_id"] for r in children)
    assert sum(r["metrics"].get("infeasible", 0) for r in children) == 2
    # a second run finds every trial done and retrains nothing
    again = subprocess.run(_stage_cmd(folder), cwd=folder, env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(len(lines) == 1 for lines in _attempts(folder).values())
    assert json.loads((folder / "out" / "search.json").read_text())["resumed_trials"] == 6


@pytest.mark.slow
def test_killed_search_resumes_from_its_completed_trials(tmp_path):
    folder = _tiny_project(tmp_path, max_trials=4, max_macs=None, objective="accuracy", oracle="evolution")
    proc = subprocess.Popen(_stage_cmd(folder), cwd=folder, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.time() + 1200
    for line in proc.stderr:  # kill -9 once the first trial is saved as completed: the second one has begun
        if "search: trial 1: " in line or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _records(folder)
    assert 1 <= len([r for r in first.values() if r["status"] == "completed"]) < 4
    out = subprocess.run(_stage_cmd(folder), cwd=folder, env=_env(), capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _check_outputs(folder, 4)
    assert metrics["resumed_trials"] >= 1
    after = _records(folder)
    for name, rec in first.items():  # completed before the kill: kept, not retrained
        if rec["status"] == "completed":
            assert after[name]["started"] == rec["started"] and len(_attempts(folder)[name]) == 1


@pytest.mark.slow
def test_screening_shortlists_within_the_limits_and_is_kept_for_a_rerun(tmp_path):
    folder = _tiny_project(tmp_path, oracle="evolution", max_trials=4, screen_candidates=10, screen_convert=5,
                           screen_keep=2, latency_source="predicted", heads="flatten", widths=[8, 16, 24, 32, 64],
                           blocks="separable,standard", proxy_batch=16)  # fmt: skip
    out = subprocess.run(_stage_cmd(folder), cwd=folder, env=_env(), capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _check_outputs(folder, 4)
    screening = list(csv.DictReader((folder / "out" / "plots" / "screening.csv").open()))
    assert len(screening) == metrics["screened"] == 10
    counts = {s: sum(r["screening"] == s for r in screening) for s in metrics["screening"]}
    assert counts == metrics["screening"] and counts["not costed"] == 5 and counts["shortlisted"] <= 2
    over = {r["values_hash"] for r in screening if r["screening"] == "over limit"}
    assert all(int(r["macs"]) > 60000 for r in screening if r["values_hash"] in over)
    records = _records(folder)
    assert not over & {r["values_hash"] for r in records.values()}  # over a limit at screening: never a trial
    shortlisted = {r["values_hash"] for r in screening if r["screening"] == "shortlisted"}
    first = {r["values_hash"] for r in list(records.values())[1 : 1 + len(shortlisted)]}
    assert first == shortlisted  # trained right after the current student
    assert all(r["status"] != "infeasible" for r in records.values())
    assert metrics["hypervolume"] > 0 and metrics["proxy_correlation"]["trials"] == metrics["completed"]
    assert all(r.get("proxy") is not None for r in records.values())
    again = subprocess.run(_stage_cmd(folder), cwd=folder, env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "screening read back" in again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_two_workers_run_every_trial_once(tmp_path):
    folder = _tiny_project(tmp_path, max_trials=4, max_macs=None, objective="accuracy")
    port = _free_port()
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**_env(), "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}  # fmt: skip
        log = open(tmp_path / f"{tuner_id}.log", "w")
        procs[tuner_id] = subprocess.Popen(_stage_cmd(folder), cwd=folder, env=env, stdout=log, stderr=log)
    try:
        for tuner_id, proc in procs.items():
            assert proc.wait(timeout=2400) == 0, (tmp_path / f"{tuner_id}.log").read_text()[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    _check_outputs(folder, 4)
    attempts = _attempts(folder)
    assert len(attempts) == 4 and all(len(lines) == 1 for lines in attempts.values())  # every trial ran exactly once
    assert {line.split()[0] for lines in attempts.values() for line in lines} <= {"tuner0", "tuner1"}  # workers only
    assert len({r["values_hash"] for r in _records(folder).values()}) == 4


def test_quick_profile_dvc_stage_feeds_distill():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "models/student_arch.json" in dvc["search"]["outs"]
    assert "--arch models/student_arch.json" in dvc["distill"]["cmd"] and "models/student_arch.json" in dvc["distill"]["deps"]
    assert (ROOT / "profiles" / "quick" / "dvc.yaml").read_text() == (ROOT / "dvc.yaml").read_text()


def test_evolution_starts_from_the_current_student_when_the_space_has_it(tmp_path):
    from pipelines.vision import search
    from pipelines.vision.search import search_space
    from pipelines.vision.student import resolve_arch

    p = params_yaml()
    space = search_space(p["search"], (28, 28, 1), p["student"])
    values = search.values_of(resolve_arch((28, 28, 1), p["student"]), space)
    assert values is not None and search.arch_from_values(values)["ds_widths"] == p["student"]["ds_widths"]
    assert search.values_of({**p["student"], "ds_widths": [48]}, space) is None  # 48 is not a width choice
    oracle = search.make_oracle(p["search"], space, 0, initial=[values])
    oracle._set_project_dir(str(tmp_path), "evo")
    assert oracle.create_trial("tuner0").hyperparameters.values == values


def test_infeasible_trials_are_rejected_before_training_and_the_search_continues(tmp_path, monkeypatch, capfd):
    import keras_tuner as kt

    from pipelines.vision import search, train

    def no_training(*args, **kwargs):
        raise AssertionError("an infeasible trial was trained")

    monkeypatch.setattr(train, "train_classifier", no_training)
    x, y = make_images(64, size=16, seed=4)
    data = {"x_train": x[..., None], "y_train": y.astype(np.int64), "x_val": x[:16, ..., None],
            "y_val": y[:16].astype(np.int64)}  # fmt: skip
    p = {**params_yaml()["search"], "objective": "constrained", "max_size_bytes": 1000, "latency_source": "predicted",
         "oracle": "random", "max_trials": 2, "depths": [1], "widths": [8, 16]}  # fmt: skip
    student = {"stem_widths": [4], "ds_widths": [8], "head": "gap", "dropout": 0.0, "bn_momentum": 0.9}
    from pipelines.vision.search import search_space

    profile = params_yaml()["devices"]["profiles"]["cortex_a53"]
    tuner = search.ArchTuner(data, student, p, profile, {}, 0, oracle=search.make_oracle(p, search_space(p, (16, 16, 1), student), 0),
                             directory=str(tmp_path), project_name="p")  # fmt: skip
    tuner.search(verbose=0)  # two infeasible trials in a row: the search goes on and ends normally
    out = capfd.readouterr()
    assert "Traceback" not in out.err + out.out and "FailedTrialError" not in out.err + out.out  # one log line each
    rows = search.collect(tmp_path / "p", tuner.oracle)
    assert [r["status"] for r in rows] == ["infeasible", "infeasible"]
    assert all(r["rejected"] == "before training" and r["size_bytes"] > 1000 for r in rows)
    assert all(t.status == kt.engine.trial.TrialStatus.FAILED for t in tuner.oracle.trials.values())
    assert search.best(rows) is None


def test_three_way_pareto_front_and_trials_plot(tmp_path):
    from pipelines.common import plots, report

    rows = [
        {"name": "a", "status": "completed", "accuracy": 0.90, "latency_ms": 1.0, "size_bytes": 100},
        {"name": "b", "status": "completed", "accuracy": 0.85, "latency_ms": 2.0, "size_bytes": 50},  # smallest: kept
        {"name": "c", "status": "completed", "accuracy": 0.85, "latency_ms": 2.0, "size_bytes": 200},  # beaten by a
        {"name": "d", "status": "infeasible", "accuracy": None, "latency_ms": 3.0, "size_bytes": 10},
    ]
    assert report.pareto_front(rows[:3], ("latency_ms", "size_bytes")) == ["a", "b"]
    assert report.pareto_front(rows[:3], "latency_ms") == ["a"]
    plots.plot_trials(rows, ["a", "b"], "a", tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
