"""Building and training tf-keras image classifiers. Plain functions: arrays in, models out."""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.vision.tfk import keras, tf

log = logging.getLogger(__name__)


def teacher_widths(input_shape: tuple[int, ...], widths: list[int] | str) -> list[int]:
    """`teacher.widths`, or for `auto` the fewest blocks (at least 2) that pool the input down to at
    most 8 pixels a side, widths doubling from 32 up to 256: [32, 64] at 28x28 or 32x32, [32, 64,
    128] at 64x64, [32, 64, 128, 256] at 96x96."""
    if widths != "auto":
        return list(widths)
    side, blocks = min(input_shape[0], input_shape[1]), 2
    while side / 2**blocks > 8:
        blocks += 1
    return [min(32 * 2**b, 256) for b in range(blocks)]


def build_teacher(input_shape: tuple[int, ...], num_classes: int, p: dict) -> keras.Model:
    """VGG-style CNN: per width, `convs_per_block` × (3×3 conv, BN, ReLU), max-pool, dropout."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for b, width in enumerate(teacher_widths(input_shape, p["widths"])):
        for c in range(p["convs_per_block"]):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"b{b}_conv{c}")(x)
            x = keras.layers.BatchNormalization(momentum=p["bn_momentum"], name=f"b{b}_bn{c}")(x)
            x = keras.layers.ReLU(name=f"b{b}_relu{c}")(x)
        x = keras.layers.MaxPool2D(name=f"b{b}_pool")(x)
        x = keras.layers.Dropout(p["dropout"], name=f"b{b}_drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(p["dense_units"], activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dense_dropout(p["dense_dropout"], num_classes), name="dense_drop")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="teacher")


def dense_dropout(rate: float | str, num_classes: int) -> float:
    """`teacher.dense_dropout`, or for `auto` 0.5 up to 10 classes and 0.5 x 10 / classes past them
    (0.05 at 100). Half the dense units dropped in front of many classes stops the teacher from
    learning: on a 100-class set of 8,000 images, 600 steps at 0.5 stayed at chance (1 %
    validation accuracy) where 0 reached 65 % (docs/experiments/user-data.md)."""
    if rate != "auto":
        return float(rate)
    return round(0.5 * min(1.0, 10 / num_classes), 4)


def passes_per_epoch(n_images: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Passes over the data in one epoch, so that `epochs` epochs take at least `min_steps`
    optimiser steps: a few hundred images at the epochs that suit tens of thousands would leave
    the weights, and BatchNorm's moving statistics, where they started. 1 on data large enough;
    the epochs (validation, checkpoints, log lines) stay as many as asked."""
    steps = int(np.ceil(n_images / batch_size))
    return max(1, int(np.ceil(min_steps / max(epochs * steps, 1))))


def chance_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of `y`."""
    return float(np.bincount(y).max() / len(y)) if len(y) else 0.0


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest validation accuracy (the later one on a tie)
    and puts them back when training ends; `best_epoch` is that epoch (1-based)."""

    def __init__(self) -> None:
        super().__init__()
        self.best, self.best_epoch, self.weights = -1.0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_accuracy")
        if value is not None and value >= self.best:
            self.best, self.best_epoch, self.weights = float(value), epoch + 1, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to the float32 [0, 1] input every model of the pipeline takes."""
    return x.astype(np.float32) / 255.0


def _augment(flip: bool, shift: int, shape: tuple[int, int, int], seed: int):
    h, w, c = shape

    def fn(x, y):
        if flip:
            x = tf.image.random_flip_left_right(x, seed=seed)
        if shift:
            x = tf.image.pad_to_bounding_box(x, shift, shift, h + 2 * shift, w + 2 * shift)
            x = tf.image.random_crop(x, [h, w, c], seed=seed + 1)
        return x, y

    return fn


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch with the time it took: progress that reads well in DVC logs."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        log.info("epoch %d/%d %.0fs %s", epoch + 1, self.epochs, time.time() - self.t0, shown)


def training_stream(x: np.ndarray, y: np.ndarray, p: dict, seed: int, num_classes: int) -> tf.data.Dataset:
    """Shuffled, augmented, batched (image, one-hot) pairs, repeated without end. The images stay
    uint8 until an element is taken: memory holds one copy of the data, not four times its size.

    Batching comes before the repeat, so every run of ceil(n / batch_size) batches is one epoch
    holding each image once. One iterator serves the whole fit: a new one per epoch (what Keras
    builds by default) costs a pass over the shuffle buffer between epochs.
    """
    data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.map(lambda image, label: (tf.cast(image, tf.float32) / 255.0, tf.one_hot(label, num_classes)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)  # fmt: skip
    if p["augment_flip"] or p["augment_shift"]:
        aug = _augment(p["augment_flip"], p["augment_shift"], tuple(x.shape[1:]), seed)
        data = data.map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.batch(p["batch_size"]).repeat().prefetch(tf.data.AUTOTUNE)


def train_classifier(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    p: dict,
    seed: int,
    schedule: keras.optimizers.schedules.LearningRateSchedule | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Adam with cosine decay (or `schedule`), label smoothing and optional flip/shift augmentation.

    An epoch is `passes_per_epoch` passes over the data when `p["min_steps"]` asks for more steps
    than `p["epochs"]` passes give. Returns the per-epoch history (loss, accuracy, val_loss,
    val_accuracy).
    """
    num_classes = int(model.output_shape[-1])
    passes = passes_per_epoch(len(x_train), p["batch_size"], p["epochs"], p.get("min_steps", 0))
    steps = passes * int(np.ceil(len(x_train) / p["batch_size"]))
    if schedule is None:
        schedule = keras.optimizers.schedules.CosineDecay(p["learning_rate"], decay_steps=p["epochs"] * steps)
    if p["weight_decay"] > 0:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=p["weight_decay"])
    else:
        optimizer = keras.optimizers.Adam(schedule)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=p["label_smoothing"]),
        metrics=["accuracy"],
    )
    val = (to_float(x_val), tf.one_hot(y_val, num_classes))
    history = model.fit(
        training_stream(x_train, y_train, p, seed, num_classes),
        epochs=p["epochs"],
        steps_per_epoch=steps,
        validation_data=val,
        verbose=1 if sys.stderr.isatty() else 0,
        callbacks=[EpochLog(p["epochs"]), *callbacks],
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def snapshot_ensemble(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    p: dict,
    seed: int,
    cycles: int,
    epochs_per_cycle: int,
    learning_rate: float,
) -> list[keras.Model]:
    """A snapshot ensemble (Huang et al., 2017) from one cyclic-learning-rate run.

    A copy of `model` keeps training from its weights with cosine annealing restarted every
    `epochs_per_cycle` epochs (from `learning_rate` down to 0); the weights at the end of each of
    the `cycles` cycles, each a different low-loss point, become one member. `p` gives the batch
    size and augmentation (the teacher's training params); `model` is left unchanged.
    """
    member = keras.models.clone_model(model)
    member.set_weights(model.get_weights())
    steps = int(np.ceil(len(x_train) / p["batch_size"]))
    schedule = keras.optimizers.schedules.CosineDecayRestarts(
        learning_rate, first_decay_steps=epochs_per_cycle * steps, t_mul=1.0, m_mul=1.0
    )
    weights: list[list[np.ndarray]] = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % epochs_per_cycle == 0:
                weights.append(member.get_weights())
                log.info("snapshot %d/%d taken after epoch %d", len(weights), cycles, epoch + 1)

    run = {**p, "epochs": cycles * epochs_per_cycle}
    train_classifier(member, x_train, y_train, x_val, y_val, run, seed, schedule=schedule, callbacks=[Snapshot()])
    snapshots = []
    for w in weights:
        snap = keras.models.clone_model(model)
        snap.set_weights(w)
        snapshots.append(snap)
    return snapshots



def resumable(state: Path, epochs: int) -> list[keras.callbacks.Callback]:
    """Callbacks that keep each finished epoch in `state`: its history row first (CSVLogger), then
    the weights, optimiser state and epoch (BackupAndRestore, which puts them back when the next
    fit starts). A kill between the two repeats that epoch; it never loses one."""

    class Kept(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log.info("teacher: epoch %d of %d kept for a resume", epoch + 1, epochs)

    return [keras.callbacks.CSVLogger(str(state / "history.csv"), append=True),
            keras.callbacks.BackupAndRestore(str(state / "backup")), Kept()]  # fmt: skip


def kept_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch history in a CSVLogger file, the last row of each epoch (a repeated epoch's
    second row replaces its first)."""
    rows: dict[int, dict[str, float]] = {}
    if path.is_file():
        with path.open() as f:
            for r in csv.DictReader(f):
                epoch = int(r.pop("epoch"))
                rows[epoch] = {k: float(v) for k, v in r.items()}
    keys = list(next(iter(rows.values()), {}))
    return {k: [rows[e][k] for e in sorted(rows)] for k in keys}


def history_csv(history: dict[str, list[float]], epochs: int) -> str:
    """The per-epoch history as CSV (`dvc plots` reads it), one row per epoch."""
    rows = ["epoch," + ",".join(history)]
    rows += [f"{e + 1}," + ",".join(f"{history[k][e]:.6f}" for k in history) for e in range(epochs)]
    return "\n".join(rows) + "\n"
