"""Distillation: each loss against a value computed by hand, the student family, and the loop.

Covered: Hinton KL at T = 1 and T = 2; decoupled KD's two terms, and their sum equal to Hinton's
KL once the non-target term is weighted by the teacher's other-class mass; logit L2, hints,
attention maps, relational distance and angle on hand-made embeddings; logit-standardised Hinton
unchanged by a scale and shift of the student's logits, where plain Hinton changes; kd_gain's 95 %
interval against printed t quantiles; ensemble targets; every loss mix training a student.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import tiny_images

ARCH = {"stem_widths": [4, 8], "ds_widths": [16], "head": "flatten", "dropout": 0.0, "bn_momentum": 0.9}
TRAIN = {"epochs": 2, "batch_size": 32, "learning_rate": 0.01, "augment_flip": True}


def test_hinton_loss_on_hand_made_logits():
    from pipelines.vision.losses import hinton_loss, soft_targets

    # student softmax [1/4, 3/4], teacher one-hot on class 0: KL = ln 4
    teacher = np.array([[1.0, 0.0]], np.float32)
    assert float(hinton_loss(np.array([[0.0, math.log(3)]], np.float32), teacher, 1.0)) == pytest.approx(
        math.log(4), rel=1e-5
    )
    # at T = 2 logits [0, ln 9] soften to the same [1/4, 3/4]; the loss is scaled by T^2 = 4
    assert float(hinton_loss(np.array([[0.0, math.log(9)]], np.float32), teacher, 2.0)) == pytest.approx(
        4 * math.log(4), rel=1e-5
    )
    # identical distributions: zero; averaged over the batch
    same = soft_targets(np.array([[1.0, 2.0, 3.0]]), 4.0)
    assert float(hinton_loss(np.array([[1.0, 2.0, 3.0]], np.float32), same, 4.0)) == pytest.approx(0, abs=1e-6)
    batch = hinton_loss(
        np.array([[0.0, math.log(3)], [0.0, 0.0]], np.float32), np.array([[1.0, 0.0], [0.5, 0.5]]), 1.0
    )
    assert float(batch) == pytest.approx(math.log(4) / 2, rel=1e-5)


def test_standardised_hinton_ignores_logit_scale_and_shift():
    from pipelines.vision.losses import DistillLoss, hinton_loss, soft_targets, standardised

    z = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]], np.float32)
    # z-scored rows: mean 0, population std 1; [1, 2, 3] becomes [-sqrt(1.5), 0, sqrt(1.5)]
    row = standardised(np.array([[1.0, 2.0, 3.0]])).numpy()
    assert row[0] == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)], abs=1e-5)
    teacher = soft_targets(np.array([[1.0, 0.0, 0.0], [0.0, 4.0, 2.0]]), 2.0, standardise=True)
    # teacher targets too: softening 10x the teacher's logits gives the same standardised targets
    assert soft_targets(np.array([[10.0, 0.0, 0.0], [0.0, 40.0, 20.0]]), 2.0, True).numpy() == pytest.approx(
        teacher.numpy(), rel=1e-5
    )
    base = float(hinton_loss(z, teacher, 2.0, standardise=True))
    assert base > 0
    assert float(hinton_loss(3.0 * z + 7.0, teacher, 2.0, standardise=True)) == pytest.approx(base, rel=1e-4)
    # without standardisation the scale of the student's logits changes the loss
    assert float(hinton_loss(3.0 * z, teacher, 2.0)) != pytest.approx(float(hinton_loss(z, teacher, 2.0)))
    # the params switch reaches the loss, and the pruning fine-tune's logit-only copy keeps it
    loss = DistillLoss.from_params({
        "temperature": 2, "alpha": 0.9, "logit_weight": 0, "hint_weight": 0, "attention_weight": 0,
        "rkd_distance_weight": 0, "rkd_angle_weight": 0, "dkd_target_weight": 0, "dkd_nontarget_weight": 0,
        "logit_standardize": True})  # fmt: skip
    assert loss.logit_standardize is True and loss.temperature == 2.0 and loss.logits_only().logit_standardize


def test_decoupled_kd_on_hand_made_logits_and_its_sum_is_hinton():
    from pipelines.vision.losses import decoupled_losses, hinton_loss, soft_targets

    # teacher [1/2, 1/4, 1/4], student [1/4, 1/4, 1/2], label 0:
    # TCKD = KL([1/2, 1/2] || [1/4, 3/4]); NCKD = KL([1/2, 1/2] || [1/3, 2/3])
    teacher = np.log(np.array([[2.0, 1.0, 1.0]], np.float32))
    student = np.log(np.array([[1.0, 1.0, 2.0]], np.float32))
    tckd, nckd = decoupled_losses(student, teacher, np.array([0]), 1.0)
    assert float(tckd) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), rel=1e-5)
    assert float(nckd) == pytest.approx(0.5 * math.log(3 / 2) + 0.5 * math.log(3 / 4), rel=1e-5)
    # Hinton's KL = TCKD + (1 - teacher's true-class probability) NCKD, at any T (both scaled by T^2)
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(1, 5)).astype(np.float32), rng.normal(size=(1, 5)).astype(np.float32)
    for temperature in (1.0, 4.0):
        tckd, nckd = decoupled_losses(s, t, np.array([3]), temperature)
        p_true = float(soft_targets(t, temperature)[0, 3])
        hinton = hinton_loss(s, soft_targets(t, temperature), temperature)
        assert float(tckd) + (1 - p_true) * float(nckd) == pytest.approx(float(hinton), rel=1e-4)


def test_logit_hint_and_attention_losses_on_hand_made_tensors():
    from pipelines.vision.losses import attention_loss, attention_map, hint_loss, logit_loss

    assert float(logit_loss(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.zeros((2, 2)))) == 7.5
    assert float(hint_loss(np.ones((1, 2, 2, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32))) == 1.0
    # two positions, two channels: mean of squares 1 and 2 -> [1, 2] / sqrt(5)
    f = np.array([[[[1.0, 1.0]], [[2.0, 0.0]]]], np.float32)  # (1, 2, 1, 2)
    np.testing.assert_allclose(attention_map(f).numpy(), [[1 / math.sqrt(5), 2 / math.sqrt(5)]], rtol=1e-6)
    # attention ignores the channel count and the scale, and is the L2 distance of the unit maps
    g = np.array([[[[3.0]], [[0.0]]]], np.float32)  # map [1, 0]
    expected = math.hypot(1 / math.sqrt(5) - 1, 2 / math.sqrt(5))
    assert float(attention_loss(f, g)) == pytest.approx(expected, rel=1e-6)
    assert float(attention_loss(f, 10 * f)) == pytest.approx(0, abs=1e-6)


def test_relational_losses_on_hand_made_embeddings():
    from pipelines.vision.losses import rkd_angle_loss, rkd_distance_loss

    s = np.array([[0.0], [1.0], [2.0]], np.float32)
    t = np.array([[0.0], [1.0], [3.0]], np.float32)
    # distances normalised by their mean (4/3 and 2): pairs differ by 0.25, 0 and 0.25;
    # Huber 0.5 * 0.25^2 on 4 of the 9 entries of the distance matrix
    assert float(rkd_distance_loss(s, t)) == pytest.approx(4 * 0.5 * 0.25**2 / 9, rel=1e-5)
    # both terms are blind to translation, rotation and scale
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 2)).astype(np.float32)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]], np.float32)
    moved = 3.0 * e @ rot + 5.0
    assert float(rkd_distance_loss(e, moved)) == pytest.approx(0, abs=1e-5)
    assert float(rkd_angle_loss(e, moved)) == pytest.approx(0, abs=1e-5)
    # a right isosceles triangle against three points on a line, 27 (vertex, i, k) cosines:
    # at vertex 0, cos 0 vs cos pi twice (Huber 1 - 0.5 each); at vertices 1 and 2, cos 45 deg
    # vs cos 0 twice each (Huber 0.5 (1 - 1/sqrt 2)^2); the 1s on the diagonals agree
    right = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    line = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], np.float32)
    expected = (2 * 0.5 + 4 * 0.5 * (1 - 1 / math.sqrt(2)) ** 2) / 27
    assert float(rkd_angle_loss(right, line)) == pytest.approx(expected, rel=1e-5)


def test_student_follows_arch_and_pairs_with_the_teacher():
    from pipelines.vision import train
    from pipelines.vision.student import build_student
    from pipelines.vision.teacher_targets import feature_taps
    from tests.test_train import P

    student = build_student((16, 16, 1), 10, ARCH)
    convs = [
        layer.name
        for layer in student.layers
        if "conv" in layer.name or "_dw" in layer.name[-3:] or "_pw" in layer.name[-3:]
    ]
    assert convs == ["stem0_conv", "stem1_conv", "ds0_dw", "ds0_pw"]
    # 3x3 convs (no bias) + BN + depthwise 3x3 + 1x1 + BN, pool 4x4 -> 2x2, dense 64 -> 10
    expected = 9 * 4 + 9 * 4 * 8 + 9 * 8 + 8 * 16 + 4 * (4 + 8 + 8 + 16) + (2 * 2 * 16 * 10 + 10)
    assert student.count_params() == expected
    teacher = train.build_teacher((16, 16, 1), 10, P)
    s_taps, t_taps = feature_taps(student), feature_taps(teacher)
    assert s_taps == {(16, 16): "stem0_relu", (8, 8): "stem1_relu", (4, 4): "ds0_pw_relu"}
    assert t_taps == {(16, 16): "b0_relu1", (8, 8): "b1_relu1"}


@pytest.mark.parametrize(
    "weights",
    [
        {"alpha": 0.9},
        {"logit_weight": 1.0},
        {"hint_weight": 1.0, "attention_weight": 100.0},
        {"rkd_distance_weight": 1.0, "rkd_angle_weight": 2.0, "alpha": 0.5},
    ],  # fmt: skip
    ids=["hinton", "logits", "hints+attention", "relational"],
)
def test_every_loss_mix_trains_a_student(weights, tiny_teacher):
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import distill
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.student import build_student
    from pipelines.vision.teacher_targets import teacher_targets

    teacher, x, y = tiny_teacher
    seed_everything(0)
    targets = teacher_targets([teacher, teacher], x[:240], 4.0, flips=True, features=True)
    assert targets.probs.shape == (2, 240, 10)
    np.testing.assert_allclose(targets.probs.sum(-1), 1.0, rtol=1e-5)
    loss = DistillLoss(temperature=4.0, **weights)
    student = build_student((16, 16, 1), 10, ARCH)
    history = distill.fit_student(student, x[:240], y[:240], x[240:], y[240:], loss, {**TRAIN, "epochs": 3}, 0,
                                  targets=targets, teacher=teacher)  # fmt: skip
    assert history["loss"][-1] < history["loss"][0]
    assert all(np.isfinite(history["loss"]))


def test_precomputed_teacher_maps_are_the_teachers_own_on_each_view(tiny_teacher):
    from pipelines.vision import distill
    from pipelines.vision.losses import DistillLoss, attention_distance, attention_loss, attention_map
    from pipelines.vision.student import build_student
    from pipelines.vision.teacher_targets import feature_taps, tap_model, teacher_targets
    from pipelines.vision.train import to_float
    from tests.test_train import P

    teacher, x, y = tiny_teacher
    targets = teacher_targets([teacher], x[:40], 1.0, flips=True, batch_size=16, features=True)
    taps = feature_taps(teacher)
    assert set(targets.attention) == set(taps) == {(16, 16), (8, 8)}
    tapped = tap_model(teacher, list(taps.values()))
    for v, view in enumerate([to_float(x[:40]), to_float(x[:40])[:, :, ::-1, :]]):
        outs = tapped(view, training=False)
        for size, feats in zip(taps, outs, strict=False):
            np.testing.assert_allclose(targets.attention[size][v], attention_map(feats).numpy(), atol=1e-6)
        np.testing.assert_allclose(targets.embedding[v], outs[len(taps)].numpy(), atol=1e-5)
        np.testing.assert_allclose(targets.logits[v], outs[-1].numpy(), atol=1e-4)
    assert targets.embedding.shape == (2, 40, P["dense_units"])
    # the loss from a precomputed map is the loss from the teacher's features
    s = np.random.default_rng(0).random((40, 16, 16, 4)).astype(np.float32)
    direct = attention_loss(s, outs[0])
    assert float(attention_distance(attention_map(s), targets.attention[(16, 16)][1])) == pytest.approx(
        float(direct), rel=1e-5
    )
    # without the maps, attention transfer stops with what to do
    plain = teacher_targets([teacher], x[:40], 1.0, flips=True)
    assert plain.attention is None and plain.embedding is None
    student = build_student((16, 16, 1), 10, ARCH)
    with pytest.raises(ValueError, match="features=True"):
        distill.fit_student(student, x[:40], y[:40], x[:40], y[:40], DistillLoss(attention_weight=1.0),
                            TRAIN, 0, targets=plain)  # fmt: skip


def test_baseline_needs_no_teacher_and_a_kd_loss_does():
    from pipelines.vision import distill
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.student import build_student

    x, y = tiny_images()
    student = build_student((16, 16, 1), 10, ARCH)
    kd = DistillLoss(alpha=0.5)
    with pytest.raises(ValueError, match="precomputed targets"):
        distill.fit_student(student, x, y, x, y, kd, TRAIN, 0)
    history = distill.fit_student(student, x, y, x, y, kd.labels_only(), {**TRAIN, "epochs": 1}, 0)
    assert len(history["val_accuracy"]) == 1


def test_snapshot_ensemble_takes_one_member_per_cycle_and_leaves_the_teacher():
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import train
    from pipelines.vision.evaluate import accuracy
    from pipelines.vision.teacher_targets import teacher_targets
    from tests.test_train import P

    x, y = tiny_images()
    p = {**P, "augment_flip": False, "augment_shift": 0}  # a mirrored bar is another class in these images
    seed_everything(0)
    teacher = train.build_teacher((16, 16, 1), 10, p)
    train.train_classifier(teacher, x[:240], y[:240], x[240:], y[240:], {**p, "epochs": 4}, 0)
    before = [w.copy() for w in teacher.get_weights()]
    members = train.snapshot_ensemble(teacher, x[:240], y[:240], x[240:], y[240:], p, 0, cycles=2,
                                      epochs_per_cycle=1, learning_rate=0.01)  # fmt: skip
    assert len(members) == 2
    for w0, w1 in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)
    first, second = (m.get_weights() for m in members)
    assert any(not np.allclose(a, b) for a, b in zip(before, first, strict=True))  # the run moved the weights
    assert any(not np.allclose(a, b) for a, b in zip(first, second, strict=True))  # each cycle its own point
    for m in members:  # every member is still a classifier of these images
        assert accuracy(m, x[240:], y[240:]) >= 0.5
    t = teacher_targets([teacher, *members], x[:8], 4.0, flips=False)
    assert t.probs.shape == (1, 8, 10)


def test_ensemble_targets_average_softened_outputs():
    from pipelines.vision.teacher_targets import teacher_targets
    from pipelines.vision.tfk import keras

    inp = keras.Input((2, 2, 1))
    flat = keras.layers.Flatten()(inp)
    a = keras.Model(inp, keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer="zeros")(flat))
    b = keras.Model(inp, keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant([0.0, 0.0, 8.0]))(flat))  # fmt: skip
    t = teacher_targets([a, b], np.zeros((1, 2, 2, 1), np.uint8), 2.0, flips=False)
    pb = np.exp([0, 0, 4]) / np.exp([0, 0, 4]).sum()
    np.testing.assert_allclose(t.probs[0, 0], (np.full(3, 1 / 3) + pb) / 2, rtol=1e-5)
    np.testing.assert_allclose(t.logits[0, 0], [0, 0, 4], rtol=1e-6)


def test_search_json_overrides_the_student_params_and_is_checked(tmp_path):
    from pipelines.common.errors import UserError
    from pipelines.vision.student import student_arch

    (tmp_path / "a.json").write_text('{"student": {"ds_widths": [32], "head": "gap"}}')
    arch = student_arch(ARCH, str(tmp_path / "a.json"))
    assert arch == {**ARCH, "ds_widths": [32], "head": "gap"} and student_arch(ARCH, None) == ARCH
    (tmp_path / "b.json").write_text('{"head": "avg"}')
    with pytest.raises(UserError, match="student.head must be one of 'flatten', 'gap', got .avg."):
        student_arch(ARCH, str(tmp_path / "b.json"))
    (tmp_path / "c.json").write_text('{"depth": 3}')
    with pytest.raises(UserError, match="unknown student key 'depth'"):
        student_arch(ARCH, str(tmp_path / "c.json"))


def test_stem_stride_replaces_the_first_pool_with_a_strided_conv():
    from pipelines.vision.student import build_student

    pooled = build_student((16, 16, 1), 10, ARCH)
    strided = build_student((16, 16, 1), 10, {**ARCH, "stem_stride": True})
    names = [layer.name for layer in strided.layers]
    assert "stem0_pool" not in names and "stem1_pool" in names
    assert strided.get_layer("stem0_conv").strides == (2, 2) and strided.get_layer("stem1_conv").strides == (1, 1)
    assert strided.get_layer("stem0_relu").output.shape[1:3] == pooled.get_layer("stem0_pool").output.shape[1:3]
    assert strided.count_params() == pooled.count_params()  # same weights, a quarter of the first conv's MACs


@pytest.mark.slow
def test_students_train_side_by_side_in_worker_processes(tmp_path):
    from pipelines.vision.data import Dataset
    from pipelines.vision.kd_gain import train_students
    from pipelines.vision.losses import DistillLoss, soft_targets
    from pipelines.vision.teacher_targets import TeacherTargets

    x, y = tiny_images()
    Dataset(x[:240], y[:240], x[240:], y[240:], x[240:], y[240:], [str(c) for c in range(int(y.max()) + 1)]).save(
        tmp_path / "d.npz"
    )
    logits = np.eye(int(y.max()) + 1, dtype=np.float32)[y[:240]] * 5
    targets = TeacherTargets(np.stack([soft_targets(logits, 1.0).numpy()] * 2), np.stack([logits] * 2))
    common = {"data": str(tmp_path / "d.npz"), "arch": ARCH, "distill": {**TRAIN, "born_again": False},
              "teacher_params": {}, "teacher": None, "targets": targets}  # fmt: skip
    jobs = [{**common, "seed": 0, "kind": "baseline", "loss": vars(DistillLoss().labels_only()), "save": None},
            {**common, "seed": 0, "kind": "kd", "loss": vars(DistillLoss(1.0, 0.5)),
             "save": str(tmp_path / "kd.keras")}]  # fmt: skip
    here, apart = train_students(jobs, 1), train_students(jobs, 2)
    assert [r["kind"] for r in apart] == ["baseline", "kd"]  # in the order of the jobs, whichever ends first
    for a, b in zip(here, apart, strict=True):
        assert 0.0 <= b["accuracy"] <= 1.0 and b["params"] == a["params"] > 0
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.1  # the same seed: one vs two TensorFlow threads at most
    from pipelines.vision.tfk import load_model

    assert load_model(tmp_path / "kd.keras").count_params() == apart[1]["params"]


def test_summarise_gives_the_t_interval_of_the_mean():
    from pipelines.common.stats import summarise

    # t(0.975) from a printed table: 12.706 for 1 degree of freedom, 4.303 for 2
    two = summarise([0.0, 1.0])
    assert two["mean"] == 0.5 and two["n"] == 2 and math.isclose(two["std"], math.sqrt(0.5))
    assert math.isclose(two["ci95_high"] - 0.5, 12.706 * math.sqrt(0.5) / math.sqrt(2), rel_tol=1e-4)
    three = summarise([0.20, 0.27, 0.04])
    half = 4.303 * three["std"] / math.sqrt(3)
    assert math.isclose(three["ci95_low"], 0.17 - half, rel_tol=1e-3)
    assert math.isclose(three["ci95_high"], 0.17 + half, rel_tol=1e-3)
    one = summarise([0.3])
    assert one == {"mean": 0.3, "std": 0.0, "n": 1}



def test_the_chain_falls_back_to_the_labels_only_student_when_distilling_does_not_help():
    from pipelines.vision.kd_gain import chain_student

    runs = [{"baseline_val_accuracy": 0.90, "kd_val_accuracy": 0.88}, {"baseline_val_accuracy": 0.92, "kd_val_accuracy": 0.90}]
    weak = chain_student(0.85, runs)
    assert weak["student"] == "baseline" and weak["teacher_weaker_than_baseline"] and "weaker" in weak["reason"]
    strong = chain_student(0.95, runs)  # a stronger teacher whose distillation still hurt
    assert strong["student"] == "baseline" and not strong["teacher_weaker_than_baseline"]
    helped = [{**r, "kd_val_accuracy": 0.95} for r in runs]
    assert chain_student(0.95, helped)["student"] == "kd" and "helped" in chain_student(0.95, helped)["reason"]
