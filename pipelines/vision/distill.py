"""Knowledge distillation's training loop: `fit_student` trains one student with any `DistillLoss`
mix from precomputed `TeacherTargets`, keeping every finished epoch in an `EpochCheckpoint` when
asked (prune fine-tunes through it too). The distill stage's comparison of a distilled and a
label-only student over seeds is `kd_gain.py`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.vision.evaluate import accuracy
from pipelines.vision.losses import (
    DistillLoss,
    attention_distance,
    attention_map,
    decoupled_losses,
    hint_loss,
    hinton_loss,
    logit_loss,
    rkd_angle_loss,
    rkd_distance_loss,
)
from pipelines.vision.teacher_targets import TeacherTargets, feature_taps, tap_model
from pipelines.vision.tfk import keras, tf
from pipelines.vision.train import passes_per_epoch, to_float

log = logging.getLogger(__name__)


def fit_student(
    student: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    loss: DistillLoss,
    p: dict,
    seed: int,
    targets: TeacherTargets | None = None,
    teacher: keras.Model | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint: str | Path | None = None,
) -> dict[str, list[float]]:
    """Train `student` with `loss` by a GradientTape loop; returns per-epoch loss, accuracy,
    val_accuracy and seconds.

    Teacher outputs come precomputed in `targets`: the logits and softened outputs, and for
    attention transfer and relational KD the teacher's attention maps and embedding (made with
    `teacher_targets(..., features=True)`). Only hints, which regress whole feature maps, run
    `teacher` on each batch. `p` holds epochs, batch_size, learning_rate and augment_flip, and may
    hold min_steps: each epoch is then as many passes over the data as `train.passes_per_epoch` says.
    `callbacks` get on_train_begin / on_train_batch_begin / on_epoch_end (what tfmot's
    UpdatePruningStep needs). Random flips pick the matching precomputed teacher outputs.

    With `checkpoint` (a folder), every finished epoch is kept there: the weights (the adapters'
    too), the optimiser's state, the data order's random state and the history. A call that finds
    one resumes after its epoch with the same data order as an unbroken run; only dropout's masks
    are drawn afresh, so without dropout the result is the same bit for bit.
    """
    if loss.uses_teacher and targets is None:
        raise ValueError("a distillation loss needs the teacher's precomputed targets")
    if loss.hint_weight > 0 and teacher is None:
        raise ValueError("hints need the teacher model")
    if loss.uses_teacher_maps and targets.embedding is None:
        raise ValueError("attention transfer and relational KD need the teacher's maps: teacher_targets(features=True)")
    n, num_classes = len(x_train), int(student.output_shape[-1])
    steps = int(np.ceil(n / p["batch_size"]))  # per pass over the data
    passes = passes_per_epoch(n, p["batch_size"], p["epochs"], p.get("min_steps", 0))
    schedule = keras.optimizers.schedules.CosineDecay(p["learning_rate"], decay_steps=p["epochs"] * passes * steps)
    optimizer = keras.optimizers.Adam(schedule)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(seed)

    trainable = list(student.trainable_variables)
    sizes, s_model, t_model, adapters, extras = [], student, None, [], []
    if loss.uses_features:  # student and teacher layers pair by spatial size
        s_taps = feature_taps(student)
        t_taps = feature_taps(teacher) if teacher is not None else targets.attention
        sizes = [z for z in t_taps if z in s_taps]
        s_model = tap_model(student, [s_taps[z] for z in sizes])
        if loss.hint_weight > 0:
            t_model = tap_model(teacher, [t_taps[z] for z in sizes])
            for z in sizes:
                channels = teacher.get_layer(t_taps[z]).output.shape[-1]
                adapter = keras.layers.Conv2D(channels, 1, name=f"hint_{s_taps[z]}")
                adapter.build(student.get_layer(s_taps[z]).output.shape)
                adapters.append(adapter)
                trainable += adapter.trainable_variables
        log.info("distill: feature pairs (student layer, spatial size) %s", [(s_taps[z], z) for z in sizes])
    if loss.attention_weight > 0:  # per batch: each pair's teacher attention map
        extras += [targets.attention[z] for z in sizes]
    if loss.uses_embedding:
        extras.append(targets.embedding)

    def total_loss(x, y, probs, logits, teacher_side):
        outs = s_model(x, training=True)
        s_logits = outs[-1] if loss.uses_features else outs
        value = (1.0 - loss.alpha) * ce(y, s_logits)
        if loss.alpha > 0:
            value += loss.alpha * hinton_loss(s_logits, probs, loss.temperature, loss.logit_standardize)
        if loss.logit_weight > 0:
            value += loss.logit_weight * logit_loss(s_logits, logits)
        if loss.uses_decoupled:
            tckd, nckd = decoupled_losses(s_logits, logits, y, loss.temperature)
            value += loss.dkd_target_weight * tckd + loss.dkd_nontarget_weight * nckd
        if loss.uses_features:
            s_feats = outs[: len(sizes)]
            if loss.hint_weight > 0:
                t_feats = t_model(x, training=False)[: len(sizes)]
                for adapter, sf, tf_ in zip(adapters, s_feats, t_feats, strict=True):
                    value += loss.hint_weight * hint_loss(adapter(sf), tf_) / len(sizes)
            if loss.attention_weight > 0:
                for sf, t_map in zip(s_feats, teacher_side[: len(sizes)], strict=True):
                    value += loss.attention_weight * attention_distance(attention_map(sf), t_map) / len(sizes)
            if loss.uses_embedding:
                s_e, t_e = outs[len(sizes)], teacher_side[-1]
                if loss.rkd_distance_weight > 0:
                    value += loss.rkd_distance_weight * rkd_distance_loss(s_e, t_e)
                if loss.rkd_angle_weight > 0:
                    value += loss.rkd_angle_weight * rkd_angle_loss(s_e, t_e)
        return value, s_logits

    sig = [tf.TensorSpec([None, *x_train.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int64),
           tf.TensorSpec([None, num_classes], tf.float32), tf.TensorSpec([None, num_classes], tf.float32),
           tuple(tf.TensorSpec([None, a.shape[-1]], tf.float32) for a in extras)]  # fmt: skip

    @tf.function(input_signature=sig)
    def train_step(x, y, probs, logits, teacher_side):
        with tf.GradientTape() as tape:
            value, s_logits = total_loss(x, y, probs, logits, teacher_side)
        optimizer.apply_gradients(zip(tape.gradient(value, trainable), trainable, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(s_logits, -1), y), tf.float32))
        return value, correct

    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_accuracy": [], "seconds": []}
    saver = EpochCheckpoint(checkpoint, student=student, optimizer=optimizer, adapters=adapters) if checkpoint else None
    if saver and (kept := saver.restore()):
        rng.bit_generator.state, history = kept["rng"], kept["history"]
        log.info("distill: resuming after epoch %d of %d (%s)", len(history["loss"]), p["epochs"], checkpoint)
    for cb in callbacks:
        cb.set_model(student)
        cb.on_train_begin()
    y_all = y_train.astype(np.int64)
    for epoch in range(len(history["loss"]), p["epochs"]):
        t0 = time.time()
        total, correct = 0.0, 0.0
        for step in range(passes * steps):
            b = step % steps
            if b == 0:  # a new pass: a new order and new flips
                order = rng.permutation(n)
                flip = rng.random(n) < 0.5 if p["augment_flip"] else np.zeros(n, bool)
            idx = order[b * p["batch_size"] : (b + 1) * p["batch_size"]]
            xb = to_float(x_train[idx])  # uint8 until the batch is formed
            fb = flip[idx]
            xb[fb] = xb[fb][:, :, ::-1, :]
            if targets is not None:
                view = fb.astype(np.int64) if len(targets.probs) > 1 else np.zeros(len(idx), np.int64)
                probs, logits = targets.probs[view, idx], targets.logits[view, idx]
            else:
                probs = logits = np.zeros((len(idx), num_classes), np.float32)
            for cb in callbacks:
                cb.on_train_batch_begin(step)
            value, right = train_step(xb, y_all[idx], probs, logits, tuple(a[view, idx] for a in extras))
            total += float(value) * len(idx)
            correct += float(right)
        for cb in callbacks:
            cb.on_epoch_end(epoch)
        val_acc = accuracy(student, x_val, y_val)
        history["loss"].append(total / (n * passes))
        history["accuracy"].append(correct / (n * passes))
        history["val_accuracy"].append(val_acc)
        history["seconds"].append(round(time.time() - t0, 1))
        log.info("epoch %d/%d %.0fs loss=%.4f accuracy=%.4f val_accuracy=%.4f", epoch + 1, p["epochs"],
                 history["seconds"][-1], history["loss"][-1], history["accuracy"][-1], val_acc)  # fmt: skip
        if saver:
            saver.save({"rng": rng.bit_generator.state, "history": history})
    return history


class EpochCheckpoint:
    """A training loop's last finished epoch in a folder: the TensorFlow objects passed in (a
    `tf.train.Checkpoint`) and a JSON `state`. Each epoch writes a new checkpoint, then `epoch.json`
    naming it, then removes the one before, so a run killed at any point leaves a whole epoch."""

    def __init__(self, folder: str | Path, **objects) -> None:
        self.folder = Path(folder)
        self.ckpt = tf.train.Checkpoint(**objects)

    def restore(self) -> dict | None:
        """The saved state, or None when there is none. The objects' values are put back (an
        optimiser's slots when it next creates them). A folder that cannot be read back (other
        objects, files cut short by a crash of the machine) is removed: training starts afresh."""
        index = self.folder / "epoch.json"
        if not index.is_file():
            return None
        try:
            kept = io.read_json(index)
            self.ckpt.read(str(self.folder / kept["checkpoint"])).assert_existing_objects_matched()
            return kept["state"]
        except Exception as e:  # noqa: BLE001 - whatever the reason, training afresh is right
            log.warning("%s: the kept epoch cannot be read back (%s: %s); starting afresh", self.folder,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")  # fmt: skip
            shutil.rmtree(self.folder)
            return None

    def save(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch{len(state['history']['loss'])}"
        self.ckpt.write(str(self.folder / name))
        io.write_json(self.folder / "epoch.json", {"checkpoint": name, "state": state})
        for old in self.folder.glob("epoch[0-9]*.*"):  # the epoch before, and any a kill left behind
            if old.name.split(".")[0] != name:
                old.unlink()
