"""Pruning: the measured sparsity of every kernel after a short fine-tune, 2:4 layout, and sizes.

Covered: measured sparsity of every kernel after polynomial, constant and 2:4 pruning.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_images
from tests.test_distill import ARCH, TRAIN


def test_m_by_n_layout_on_hand_made_kernels():
    from pipelines.vision import prune

    ok = np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 4.0]]).T  # (cin=4, cout=2): 2 zeros per block
    assert prune.is_m_by_n(ok)
    assert not prune.is_m_by_n(np.ones((4, 2)))
    assert not prune.is_m_by_n(np.zeros((3, 2)))  # 3 input channels: no blocks of 4
    assert prune.overall_sparsity({"a": {"kind": "Conv2D", "weights": 10, "sparsity": 0.5},
                                   "b": {"kind": "DepthwiseConv2D", "weights": 90, "sparsity": 0.0},
                                   "c": {"kind": "Dense", "weights": 30, "sparsity": 0.9}}) == 0.8  # fmt: skip


@pytest.mark.parametrize("kind", ["polynomial", "constant", "2:4"])
def test_pruning_reaches_the_target_in_every_prunable_kernel(kind, tmp_path):
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import distill, prune
    from pipelines.vision.losses import DistillLoss
    from pipelines.vision.student import build_student
    from pipelines.vision.tfk import keras

    x, y = tiny_images()
    seed_everything(0)
    student = build_student((16, 16, 1), 10, ARCH)
    steps = int(np.ceil(240 / TRAIN["batch_size"]))
    sched, frequency = prune.schedule("constant" if kind == "constant" else "polynomial", 0.7, 2 * steps, 2, steps)
    assert frequency == steps // 2
    wrapped = prune.prunable(student, sched, (2, 4) if kind == "2:4" else None)
    distill.fit_student(wrapped, x[:240], y[:240], x[240:], y[240:], DistillLoss(), TRAIN, 0,
                        callbacks=[prune.step_callback()])  # fmt: skip
    prune.strip(wrapped).save(tmp_path / "p.keras")
    measured = prune.kernel_sparsity(keras.models.load_model(tmp_path / "p.keras"))
    assert measured["ds0_dw"]["sparsity"] == 0.0  # tfmot never prunes depthwise kernels
    assert np.count_nonzero(student.get_layer("stem1_conv").get_weights()[0] == 0) == 0  # the input is untouched
    if kind == "2:4":
        assert measured["stem0_conv"]["sparsity"] == 0.0  # one input channel: no block of 4
        for name in ("stem1_conv", "ds0_pw", "logits"):
            assert measured[name]["two_of_four"] and measured[name]["sparsity"] >= 0.5
    else:
        for name in ("stem0_conv", "stem1_conv", "ds0_pw", "logits"):
            assert measured[name]["sparsity"] == pytest.approx(0.7, abs=0.01)


def test_gzip_shrinks_zeros_and_benchmarks_interleave(tiny_models):
    from pipelines.edge import bench
    from pipelines.vision import prune

    blob = tiny_models["int8"].read_bytes()
    assert prune.gzip_size(bytes(len(blob))) < prune.gzip_size(blob) < len(blob) * 1.01
    r = bench.interleaved({"a": tiny_models["int8"], "b": tiny_models["fp32"]}, rounds=2, warmup_runs=1,
                          min_runs=5, min_seconds=0.0, pin_cpu=None)  # fmt: skip
    assert set(r) == {"a", "b"} and len(r["a"]["round_p50_ms"]) == 2 and r["b"]["latency_p50_ms"] > 0
