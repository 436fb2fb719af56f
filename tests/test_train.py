"""Teacher training: the architecture follows params, and a seeded run is bit-for-bit repeatable on CPU.

Also covered: the teacher's input stream (each image once per epoch, in a new order); slow: the
teacher stage run twice in fresh processes gives the same accuracy to the last digit.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_images

P = {"widths": [4, 8], "convs_per_block": 2, "dropout": 0.1, "dense_units": 16, "dense_dropout": 0.1,
     "bn_momentum": 0.9, "epochs": 2, "batch_size": 32, "learning_rate": 0.01, "weight_decay": 0.0,
     "label_smoothing": 0.1, "augment_flip": True, "augment_shift": 2}  # fmt: skip


def _train(seed: int):
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import train

    x, y = make_images(240, size=16, seed=7)
    x = x[..., None]
    seed_everything(seed)
    model = train.build_teacher((16, 16, 1), 10, P)
    history = train.train_classifier(model, x[:200], y[:200].astype(np.int64), x[200:], y[200:].astype(np.int64), P, seed)
    return model, history


def test_teacher_architecture_follows_params():
    from pipelines.vision import train

    model = train.build_teacher((16, 16, 1), 10, P)
    convs = [layer for layer in model.layers if layer.name.endswith(("conv0", "conv1"))]
    assert [c.filters for c in convs] == [4, 4, 8, 8]
    assert model.output_shape == (None, 10)
    # 3x3 convs without bias + BN(4 per channel) + dense 8*4*4 -> 16 -> 10
    expected = (9 * 1 * 4 + 9 * 4 * 4 + 9 * 4 * 8 + 9 * 8 * 8) + 4 * (4 + 4 + 8 + 8) + (128 * 16 + 16) + (16 * 10 + 10)
    assert model.count_params() == expected


def test_same_seed_same_weights_and_history():
    a, ha = _train(5)
    b, hb = _train(5)
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb)
    c, _ = _train(6)
    assert not all(np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights(), strict=True))


def _data_and_teacher(params, out):
    """The data and teacher stages in fresh processes, outputs in `out`; the last one's result
    (the first when it fails)."""
    import subprocess
    import sys

    from tests.conftest import ROOT, run_env

    for cmd in (["stages.data", "--out", f"{out}/dataset.npz", "--metrics", f"{out}/data.json"],
                ["stages.teacher", "--data", f"{out}/dataset.npz", "--out", f"{out}/teacher.keras",
                 "--history", f"{out}/history.csv", "--metrics", f"{out}/teacher.json"]):  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", *cmd, "--params", str(params)], cwd=ROOT, capture_output=True,
                              text=True, env=run_env(), timeout=900)  # fmt: skip
        if proc.returncode != 0:
            break
    return proc


@pytest.mark.slow
def test_teacher_stage_twice_in_fresh_processes_gives_the_same_accuracy_to_the_last_digit(tmp_path, idx_dir):
    """Two separate processes, same seed, tiny data on CPU: identical metrics and per-epoch history."""

    import yaml

    from pipelines.common import io
    from tests.conftest import QUICK

    raw = yaml.safe_load((QUICK / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = "mlruns"
    raw["data"].update(path=str(idx_dir), max_train=0, max_test=0)
    raw["teacher"].update(widths=[4, 8], dense_units=16, epochs=2, batch_size=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    results = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        proc = _data_and_teacher(tmp_path / "params.yaml", out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics = io.read_json(out / "teacher.json")
        results.append(({k: metrics[k] for k in ("test_accuracy", "val_accuracy")}, (out / "history.csv").read_text()))
    assert results[0] == results[1]
    assert 0.0 < results[0][0]["test_accuracy"] <= 1.0


def test_training_stream_gives_every_image_once_per_epoch_in_a_new_order():
    from pipelines.vision import train

    x = np.arange(70, dtype=np.uint8).reshape(70, 1, 1, 1)
    y = np.arange(70) % 10
    p = {**P, "batch_size": 16, "augment_flip": False, "augment_shift": 0}
    steps = int(np.ceil(70 / 16))
    batches = iter(train.training_stream(x, y, p, seed=3, num_classes=10))
    epochs = []
    for _ in range(3):
        images, labels = zip(*(next(batches) for _ in range(steps)), strict=True)
        pixels = np.rint(np.concatenate(images).ravel() * 255).astype(int)
        assert sorted(pixels) == list(range(70))
        assert np.array_equal(np.concatenate(labels).argmax(-1), pixels % 10)
        epochs.append(pixels)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])


def test_small_data_gets_enough_steps_and_chance_is_the_majority_class():
    from pipelines.vision import train

    assert train.passes_per_epoch(58800, 128, 20, 4000) == 1  # big data: one pass an epoch, as ever
    assert train.passes_per_epoch(1056, 128, 20, 4000) == 23  # 9 steps a pass: 20 x 23 x 9 = 4,140 steps
    assert train.passes_per_epoch(100, 128, 3, 0) == 1
    assert train.chance_accuracy(np.array([0, 0, 0, 1])) == 0.75


def test_best_weights_are_the_best_validation_epoch():
    from pipelines.vision import train
    from pipelines.vision.tfk import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    best = train.BestWeights()
    best.set_model(model)
    kept = {}
    for epoch, val in enumerate([0.5, 0.8, 0.8, 0.6]):
        model.set_weights([np.full((2, 2), epoch, np.float32), np.zeros(2, np.float32)])
        kept[epoch] = model.get_weights()
        best.on_epoch_end(epoch, {"val_accuracy": val})
    best.on_train_end()
    assert best.best_epoch == 3  # a tie goes to the later epoch
    assert np.array_equal(model.get_weights()[0], kept[2][0])


@pytest.mark.slow
def test_a_teacher_at_chance_stops_the_stage_with_one_line(tmp_path):
    """Labels that are noise: the teacher cannot beat chance, and the stage says so instead of
    handing a useless teacher to distillation."""

    import yaml

    from tests.conftest import QUICK

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (400, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", x_train=x[:300], y_train=rng.integers(0, 2, 300), x_test=x[300:],
             y_test=rng.integers(0, 2, 100))  # fmt: skip
    raw = yaml.safe_load((QUICK / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = "mlruns"
    raw["data"].update(source="npz", path=str(tmp_path / "noise.npz"), max_train=0, max_test=0, class_names=None)
    raw["teacher"].update(widths=[4], dense_units=8, epochs=1, min_steps=20, min_gain_over_chance=0.2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = _data_and_teacher(tmp_path / "params.yaml", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "of chance" in errors[0] and "teacher.min_steps" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "teacher.keras").exists()


@pytest.mark.parametrize("side, widths, last_map", [(28, [32, 64], 7), (32, [32, 64], 8), (64, [32, 64, 128], 8),
                                                    (96, [32, 64, 128, 256], 6), (25, [32, 64], 6)])  # fmt: skip
def test_teacher_widths_auto_follow_the_input_size(side, widths, last_map):
    from pipelines.vision import train

    assert train.teacher_widths((side, side, 3), "auto") == widths
    model = train.build_teacher((side, side, 3), 4, {**P, "widths": "auto"})
    assert model.get_layer("flatten").input_shape[1:3] == (last_map, last_map)
    assert train.teacher_widths((side, side, 3), [8]) == [8]


def test_dense_dropout_auto_keeps_half_up_to_ten_classes_and_less_past_them():
    from pipelines.vision import train

    assert train.dense_dropout("auto", 2) == 0.5 and train.dense_dropout("auto", 10) == 0.5
    assert train.dense_dropout("auto", 100) == 0.05 and train.dense_dropout(0.3, 100) == 0.3
    model = train.build_teacher((16, 16, 1), 40, {**P, "dense_dropout": "auto"})
    assert model.get_layer("dense_drop").rate == 0.125
