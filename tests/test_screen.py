"""Screening before training and the multi-objective figures of a search: non-dominated fronts and
the hypervolume on hand-made points, Spearman's rank correlation, NASWOT's score on a network whose
activation codes are known, Keras MACs against the TFLite file's, the two-tier screen on a hand-made
space (over-limit candidates never shortlisted), and the evolution oracle skipping an infeasible
mutation without making it a trial."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tests.conftest import make_images


def test_fronts_sort_points_by_dominance():
    from pipelines.common.pareto import dominates, fronts

    pts = [(1, 1), (2, 2), (0, 3), (3, 0), (2, 3)]
    assert dominates((1, 1), (2, 2)) and not dominates((0, 3), (3, 0)) and not dominates((1, 1), (1, 1))
    assert fronts(pts) == [[0, 2, 3], [1], [4]]


def test_hypervolume_on_hand_made_points():
    from pipelines.common.pareto import hypervolume

    assert hypervolume([(0.5,)], (1.0,)) == pytest.approx(0.5)
    assert hypervolume([(1, 1)], (2, 2)) == pytest.approx(1.0)
    # two boxes of area 2 overlapping on 1: union 3; a dominated point and one beyond the reference add nothing
    assert hypervolume([(0, 1), (1, 0), (1, 1), (3, -1)], (2, 2)) == pytest.approx(3.0)
    # 3-D: a unit cube at the corner plus a 2x1x1 slab beside it, overlapping on a unit cube
    assert hypervolume([(1, 1, 1), (0, 1, 1)], (2, 2, 2)) == pytest.approx(2.0)
    assert hypervolume([(0, 0, 0)], (2, 3, 4)) == pytest.approx(24.0)
    assert hypervolume([], (1, 1)) == 0.0


def test_spearman_ranks_ties_and_degenerate_cases():
    from pipelines.common.stats import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_naswot_is_the_log_determinant_of_the_code_agreement_kernel():
    from pipelines.vision.search import naswot
    from pipelines.vision.tfk import keras

    inputs = keras.Input((2,))
    dense = keras.layers.Dense(2, use_bias=False)
    x = keras.layers.ReLU()(dense(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    dense.set_weights([np.eye(2, dtype=np.float32)])  # the codes are the inputs' signs
    images = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=np.float32)
    # codes 11, 10, 00: K[i, j] = units on which i and j agree = [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det 4
    assert naswot(model, images) == pytest.approx(math.log(4.0))
    same = np.array([[1.0, 1.0], [2.0, 3.0]], dtype=np.float32)  # identical codes: K singular, the worst score
    assert naswot(model, same) == float("-inf")


def test_naswot_scores_a_wide_student_above_a_narrow_one():
    from pipelines.vision.search import naswot
    from pipelines.vision.student import build_student

    x, _ = make_images(32, size=16, seed=1)
    images = x[..., None].astype(np.float32) / 255.0
    base = {"stem_widths": [4, 8], "head": "gap", "dropout": 0.0, "bn_momentum": 0.9}
    narrow = naswot(build_student((16, 16, 1), 10, {**base, "ds_widths": [8]}), images)
    wide = naswot(build_student((16, 16, 1), 10, {**base, "ds_widths": [64, 64]}), images)
    assert np.isfinite(narrow) and wide > narrow


@pytest.mark.parametrize("arch", [
    {"ds_widths": [96, 192]},
    {"ds_widths": [32], "block": "standard", "kernel_size": 5, "head": "gap"},
    {"ds_widths": [64, 64], "expansion": 4, "stem_stride": True},
    {"ds_widths": [48], "squeeze_excite": True, "width_multiplier": 0.5},
])  # fmt: skip
def test_keras_macs_equal_the_tflite_files_conv_and_dense_macs(tmp_path, arch):
    from pipelines.edge import analyze
    from pipelines.vision import convert
    from pipelines.vision.search import compute_macs
    from pipelines.vision.student import build_student

    model = build_student((28, 28, 1), 10, {"stem_widths": [16, 32], "dropout": 0.1, "bn_momentum": 0.9, "head": "flatten", **arch})
    path = tmp_path / "m.tflite"
    path.write_bytes(convert.to_tflite_fp32(model))
    ops = analyze.analyze(path)["ops"]
    kinds = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    assert compute_macs(model) == sum(op["macs"] for op in ops if op["op"] in kinds) > 0


def _space():
    return {"kernel_sizes": [3], "blocks": ["separable", "standard"], "expansions": [1], "squeeze_excite": "never",
            "stem_stride": "never", "width_percents": [100], "stem_downsamples": [1], "depths": [1],
            "widths": [8, 16, 32, 64, 128]}  # fmt: skip


def test_sample_draws_distinct_candidates_and_skips_the_excluded():
    from pipelines.vision.search import sample, values_hash

    space = {**_space(), "heads": ["flatten", "gap"]}
    drawn = sample(space, 30, seed=0, exclude=[])
    assert len(drawn) == 20  # 2 blocks x 5 widths x 2 heads: the space holds no more
    assert len({values_hash(v) for v in drawn}) == 20
    some = sample(space, 5, seed=1, exclude=drawn[:3])
    assert len(some) == 5 and not {values_hash(v) for v in some} & {values_hash(v) for v in drawn[:3]}


def test_screen_costs_the_best_fronts_drops_limits_and_shortlists(monkeypatch):
    from pipelines.vision import search
    from pipelines.vision.student import build_student

    space = {**_space(), "heads": ["gap"]}
    candidates = search.sample(space, 10, seed=0)
    student = {"stem_widths": [4], "dropout": 0.0, "bn_momentum": 0.9}
    x, _ = make_images(16, size=16, seed=2)
    images = x[..., None].astype(np.float32) / 255.0

    def build(values):
        return build_student((16, 16, 1), 10, {**student, **search.arch_from_values(values)})

    costed = []

    def costs_of(values_list):  # the "file": latency and MACs grow with the block's width
        costed.extend(values_list)
        return [{"latency_ms": v["width0"] / 10, "size_bytes": 100 * v["width0"], "macs": 1000 * v["width0"],
                 "memory_access_bytes": 1} for v in values_list]  # fmt: skip

    p = {"screen_convert": 6, "screen_keep": 2, "objective": "constrained", "max_latency_ms": 5.0, "max_macs": None,
         "max_size_bytes": None, "max_memory_access_bytes": None}  # fmt: skip
    rows = search.screen(candidates, build, images, p, costs_of)
    assert len(rows) == 10 and len(costed) == 6
    by_status = {s: [r for r in rows if r["screening"] == s] for s in ("shortlisted", "not shortlisted", "over limit", "not costed")}
    assert len(by_status["not costed"]) == 4 and len(by_status["shortlisted"]) == 2
    assert all(r["values"]["width0"] > 50 and "latency_ms" in r["reason"] for r in by_status["over limit"])
    assert all(r["latency_ms"] <= 5.0 for r in by_status["shortlisted"])
    kept = search.shortlist(rows)
    assert len(kept) == 2 and all(r["values"]["width0"] <= 32 for r in by_status["shortlisted"])
    proxies = {search.values_hash(r["values"]): r["proxy"] for r in rows}
    assert proxies[search.values_hash(kept[0])] >= proxies[search.values_hash(kept[1])]


def test_evolution_skips_an_infeasible_candidate_without_making_it_a_trial(tmp_path):
    import keras_tuner as kt

    from pipelines.vision import search

    def space(hp):
        hp.Choice("a", list(range(10)))
        return hp

    asked = []

    def feasible(values):
        asked.append(values["a"])
        return values["a"] % 2 == 0

    oracle = search.EvolutionOracle(population=2, tournament=2, objective=kt.Objective("score", "max"), max_trials=10,
                                    seed=3, hyperparameters=space(kt.HyperParameters()), feasible=feasible,
                                    max_consecutive_failed_trials=None)  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "evo")
    tried = []
    for _ in range(3):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        tried.append(trial.hyperparameters.values["a"])
        oracle.update_trial(trial.trial_id, {"score": random.Random(len(tried)).random()})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(tried) == 3 and all(a % 2 == 0 for a in tried)
    assert oracle.over_limits == sum(a % 2 for a in asked) >= 1
    assert len(oracle.trials) == 3  # the odd candidates were never trials


def test_the_chosen_trial_is_the_best_score_or_the_best_proxy():
    from pipelines.vision.search import best

    def row(tid, score, proxy, ms, status="completed"):
        return {"trial_id": tid, "status": status, "score": score, "proxy": proxy, "latency_ms": ms, "size_bytes": 1}

    rows = [row("00", 0.85, 600.0, 0.085), row("13", 0.86, 510.0, 0.041), row("14", 0.99, 700.0, 0.02, "infeasible"),
            row("15", 0.84, 600.0, 0.05)]  # fmt: skip
    assert best(rows, "score")["trial_id"] == "13"
    assert best(rows, "proxy")["trial_id"] == "00"  # tie on NASWOT: the higher score
    assert best([row("1", 0.5, 1.0, 1.0, "infeasible")], "proxy") is None
