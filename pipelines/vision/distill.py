"""Knowledge distillation: the student family, the distillation losses, and the loop that mixes them.

Plain functions: arrays and models in, models and numbers out. The losses follow the papers:
Hinton et al. (2015) soft targets at temperature T scaled by T²; Ba & Caruana (2014) L2 between
logits; Romero et al. (2015) FitNets hints through a 1×1 adapter; Zagoruyko & Komodakis (2017)
attention transfer; Park et al. (2019) relational KD (distance and angle); Zhao et al. (2022)
decoupled KD (target-class and non-target-class terms weighted apart); Sun et al. (2024) logit
standardisation (each row of logits z-scored before the Hinton term's softmax). A teacher ensemble
averages its members' softened outputs (and logits); born-again mode gives the student the
teacher's own architecture.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from pipelines.common import io
from pipelines.vision.tfk import keras, tf
from pipelines.vision.train import to_float

log = logging.getLogger(__name__)

STUDENT_KEYS = ("stem_widths", "ds_widths", "head", "dropout", "bn_momentum", "kernel_size", "block", "expansion",
                "squeeze_excite", "width_multiplier")  # fmt: skip
# What a search result may leave out: these build exactly the original student family.
STUDENT_DEFAULTS = {"kernel_size": 3, "block": "separable", "expansion": 1, "squeeze_excite": False,
                    "width_multiplier": 1.0, "stem_stride": False}  # fmt: skip


def scaled_width(width: int, multiplier: float, divisor: int = 8) -> int:
    """`width` x `multiplier`, rounded to the nearest multiple of `divisor` (MobileNet's rule), never
    below `divisor` nor more than 10 % under the exact product; multiplier 1 keeps `width` as it is."""
    if multiplier == 1.0:
        return int(width)
    exact = width * multiplier
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * exact else rounded


def build_student(input_shape: tuple[int, ...], num_classes: int, arch: dict) -> keras.Model:
    """A small mobile-style CNN. Per `stem_widths` entry a 3×3 conv + BN + ReLU + 2×2 max-pool, then
    per `ds_widths` entry one block with k×k convolutions (k = `kernel_size`), then the head:
    `flatten` (2×2 max-pool, flatten) or `gap` (global average pool), dropout, logits. Every width
    is scaled by `width_multiplier`.

    Blocks (`block`): `separable` with `expansion` 1 is k×k depthwise + BN + ReLU, 1×1 conv + BN +
    ReLU; with `expansion` e > 1 it is MobileNetV2's inverted residual (1×1 expand to e×channels +
    BN + ReLU, k×k depthwise + BN + ReLU, linear 1×1 projection + BN, plus the input when the
    channels match). `standard` is a full k×k conv + BN + ReLU. `squeeze_excite` adds SE after the
    depthwise (or standard) conv: global average pool, Dense(c/4) ReLU, Dense(c) sigmoid, reshape,
    multiply; every op of it converts to full-integer int8 TFLite. `stem_stride` makes the first
    stem conv stride 2 instead of conv + max-pool: on x86 XNNPACK an int8 conv from one input
    channel at full resolution ran 6x slower than its fp32 twin. Keys left out take
    `STUDENT_DEFAULTS`, which build the original family.
    """
    arch = {**STUDENT_DEFAULTS, **arch}
    bn, mult = arch["bn_momentum"], float(arch["width_multiplier"])
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, width in enumerate(arch["stem_widths"]):
        strided = i == 0 and arch["stem_stride"]
        x = layers.Conv2D(scaled_width(width, mult), 3, strides=2 if strided else 1, padding="same", use_bias=False,
                          name=f"stem{i}_conv")(x)  # fmt: skip
        x = layers.BatchNormalization(momentum=bn, name=f"stem{i}_bn")(x)
        x = layers.ReLU(name=f"stem{i}_relu")(x)
        if not strided:
            x = layers.MaxPool2D(name=f"stem{i}_pool")(x)
    for i, width in enumerate(arch["ds_widths"]):
        x = _block(x, scaled_width(width, mult), arch, f"ds{i}")
    if arch["head"] == "gap":
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    else:
        x = layers.MaxPool2D(name="head_pool")(x)
        x = layers.Flatten(name="flatten")(x)
    if arch["dropout"] > 0:
        x = layers.Dropout(arch["dropout"], name="head_drop")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="student")


def _conv_bn(x, layer, bn: float, name: str, relu: bool = True):
    x = layer(x)
    x = keras.layers.BatchNormalization(momentum=bn, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _squeeze_excite(x, name: str):
    channels = int(x.shape[-1])
    s = keras.layers.GlobalAveragePooling2D(name=f"{name}_se_pool")(x)
    s = keras.layers.Dense(max(channels // 4, 4), activation="relu", name=f"{name}_se_reduce")(s)
    s = keras.layers.Dense(channels, activation="sigmoid", name=f"{name}_se_expand")(s)
    s = keras.layers.Reshape((1, 1, channels), name=f"{name}_se_reshape")(s)
    return keras.layers.Multiply(name=f"{name}_se_scale")([x, s])


def _block(x, width: int, arch: dict, name: str):
    layers, bn, k = keras.layers, arch["bn_momentum"], int(arch["kernel_size"])
    if arch["block"] == "standard":
        x = _conv_bn(x, layers.Conv2D(width, k, padding="same", use_bias=False, name=f"{name}_conv"), bn, name)
        return _squeeze_excite(x, name) if arch["squeeze_excite"] else x
    expansion, inputs = int(arch["expansion"]), x
    if expansion > 1:
        x = _conv_bn(x, layers.Conv2D(int(x.shape[-1]) * expansion, 1, use_bias=False, name=f"{name}_expand"),
                     bn, f"{name}_expand")  # fmt: skip
    x = _conv_bn(x, layers.DepthwiseConv2D(k, padding="same", use_bias=False, name=f"{name}_dw"), bn, f"{name}_dw")
    if arch["squeeze_excite"]:
        x = _squeeze_excite(x, name)
    x = _conv_bn(x, layers.Conv2D(width, 1, use_bias=False, name=f"{name}_pw"), bn, f"{name}_pw", relu=expansion == 1)
    if expansion > 1 and int(inputs.shape[-1]) == width:
        x = layers.Add(name=f"{name}_residual")([inputs, x])
    return x


# ---- losses: each takes a batch of tensors and returns a scalar ----


def standardised(logits: np.ndarray | tf.Tensor) -> tf.Tensor:
    """Each row minus its mean, over its standard deviation (logit standardisation, Sun et al., 2024)."""
    z = tf.convert_to_tensor(logits, tf.float32)
    mean, variance = tf.nn.moments(z, axes=[-1], keepdims=True)
    return (z - mean) / tf.sqrt(variance + 1e-12)


def soft_targets(logits: np.ndarray | tf.Tensor, temperature: float, standardise: bool = False) -> tf.Tensor:
    z = standardised(logits) if standardise else tf.convert_to_tensor(logits, tf.float32)
    return tf.nn.softmax(z / temperature, axis=-1)


def hinton_loss(
    student_logits: tf.Tensor, teacher_probs: tf.Tensor, temperature: float, standardise: bool = False
) -> tf.Tensor:
    """T² · KL(teacher ‖ student) between outputs softened at temperature T, mean over the batch.

    `teacher_probs` are already softened at T (an ensemble averages its members' softened outputs).
    The T² keeps the gradient's scale independent of T (Hinton et al., 2015). With `standardise`
    the student's logits are z-scored per row first (the teacher's must have been too): the student
    then matches the teacher's ranking and relative gaps, not its logit scale.
    """
    z = standardised(student_logits) if standardise else student_logits
    log_student = tf.nn.log_softmax(z / temperature, axis=-1)
    return temperature**2 * _kl(tf.convert_to_tensor(teacher_probs, tf.float32), log_student)


def _kl(p: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
    """KL(p ‖ q) per row from p and log q, mean over the batch."""
    return tf.reduce_mean(tf.reduce_sum(p * (tf.math.log(tf.maximum(p, 1e-12)) - log_q), axis=-1))


def logit_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between logits (Ba & Caruana, 2014)."""
    return tf.reduce_mean(tf.square(student_logits - tf.convert_to_tensor(teacher_logits, tf.float32)))


def decoupled_losses(
    student_logits: tf.Tensor, teacher_logits: tf.Tensor, labels: tf.Tensor, temperature: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Decoupled KD (Zhao et al., 2022): Hinton's KL split into two parts, each scaled by T².

    TCKD: KL between the binary (true class, all others) probabilities of teacher and student.
    NCKD: KL between their distributions over the other classes alone, renormalised. In Hinton's
    loss NCKD is weighted by (1 − teacher's true-class probability), so a confident teacher's
    ranking of the wrong classes is nearly ignored; weighting it apart keeps it.
    """
    target = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(student_logits)[-1])
    s_scaled = student_logits / temperature
    t_scaled = tf.convert_to_tensor(teacher_logits, tf.float32) / temperature

    def binary(p):
        true = tf.reduce_sum(p * target, axis=-1)
        return tf.stack([true, 1.0 - true], axis=-1)

    s_binary = binary(tf.nn.softmax(s_scaled, axis=-1))
    tckd = _kl(binary(tf.nn.softmax(t_scaled, axis=-1)), tf.math.log(tf.maximum(s_binary, 1e-12)))
    masked = 1000.0 * target  # removes the true class from both softmaxes
    nckd = _kl(tf.nn.softmax(t_scaled - masked, axis=-1), tf.nn.log_softmax(s_scaled - masked, axis=-1))
    return temperature**2 * tckd, temperature**2 * nckd


def hint_loss(adapted_student: tf.Tensor, teacher_features: tf.Tensor) -> tf.Tensor:
    """FitNets: mean squared error between the adapted student feature map and the teacher's."""
    return tf.reduce_mean(tf.square(adapted_student - teacher_features))


def attention_map(features: tf.Tensor) -> tf.Tensor:
    """Spatial attention: mean over channels of the squared activations, flattened, L2-normalised."""
    a = tf.reduce_mean(tf.square(features), axis=-1)
    a = tf.reshape(a, [tf.shape(a)[0], -1])
    return tf.math.l2_normalize(a, axis=-1)


def attention_loss(student_features: tf.Tensor, teacher_features: tf.Tensor) -> tf.Tensor:
    """Attention transfer: L2 distance between normalised attention maps, mean over the batch."""
    return attention_distance(attention_map(student_features), attention_map(teacher_features))


def attention_distance(student_map: tf.Tensor, teacher_map: tf.Tensor) -> tf.Tensor:
    """The attention loss from maps already made by `attention_map` (the teacher's precomputed)."""
    return tf.reduce_mean(tf.norm(student_map - tf.convert_to_tensor(teacher_map, tf.float32), axis=-1))


def _pairwise_distances(e: tf.Tensor) -> tf.Tensor:
    sq = tf.reduce_sum(tf.square(e), axis=-1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(e, e, transpose_b=True)
    d2 = tf.maximum(d2, 0.0)
    off_diagonal = 1.0 - tf.eye(tf.shape(e)[0])
    # sqrt has an infinite gradient at 0: keep the diagonal away from it, then zero it
    return tf.sqrt(d2 + (1.0 - off_diagonal)) * off_diagonal


def _huber(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    diff = tf.abs(a - b)
    return tf.reduce_mean(tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5))


def rkd_distance_loss(student_embedding: tf.Tensor, teacher_embedding: tf.Tensor) -> tf.Tensor:
    """Relational KD, distance: Huber loss between pairwise distances, each normalised by its mean."""
    n = tf.cast(tf.shape(student_embedding)[0], tf.float32)
    pairs = tf.maximum(n * (n - 1.0), 1.0)

    def normalised(e):
        d = _pairwise_distances(tf.cast(e, tf.float32))
        return d / tf.maximum(tf.reduce_sum(d) / pairs, 1e-12)

    return _huber(normalised(student_embedding), normalised(teacher_embedding))


def _angles(e: tf.Tensor) -> tf.Tensor:
    """cos of the angle at vertex j between i and k, for all (j, i, k): <unit(e_i - e_j), unit(e_k - e_j)>."""
    diff = e[None, :, :] - e[:, None, :]
    unit = tf.math.l2_normalize(diff, axis=-1)
    return tf.matmul(unit, unit, transpose_b=True)


def rkd_angle_loss(student_embedding: tf.Tensor, teacher_embedding: tf.Tensor) -> tf.Tensor:
    """Relational KD, angle: Huber loss between the cosines of all triplet angles in the batch."""
    return _huber(_angles(tf.cast(student_embedding, tf.float32)), _angles(tf.cast(teacher_embedding, tf.float32)))


@dataclass(frozen=True)
class DistillLoss:
    """How the terms mix: (1 − alpha)·CE(labels) + alpha·Hinton + the other terms by their weights.

    alpha = 0 and every weight 0 is plain label training (the baseline student).
    """

    temperature: float = 4.0
    alpha: float = 0.0
    logit_weight: float = 0.0
    hint_weight: float = 0.0
    attention_weight: float = 0.0
    rkd_distance_weight: float = 0.0
    rkd_angle_weight: float = 0.0
    dkd_target_weight: float = 0.0
    dkd_nontarget_weight: float = 0.0
    logit_standardize: bool = False  # z-score both sides' logits before the Hinton term's softmax

    @classmethod
    def from_params(cls, p: dict) -> DistillLoss:
        return cls(**{f.name: type(f.default)(p[f.name]) for f in fields(cls)})

    @property
    def uses_features(self) -> bool:
        return self.hint_weight > 0 or self.uses_teacher_maps

    @property
    def uses_teacher_maps(self) -> bool:
        """Terms whose teacher side is precomputed once (`TeacherTargets.attention`, `.embedding`)."""
        return self.attention_weight > 0 or self.uses_embedding

    @property
    def uses_embedding(self) -> bool:
        return self.rkd_distance_weight > 0 or self.rkd_angle_weight > 0

    @property
    def uses_decoupled(self) -> bool:
        return self.dkd_target_weight > 0 or self.dkd_nontarget_weight > 0

    @property
    def uses_teacher(self) -> bool:
        return self.alpha > 0 or self.logit_weight > 0 or self.uses_decoupled or self.uses_features

    def labels_only(self) -> DistillLoss:
        return DistillLoss(temperature=self.temperature)

    def logits_only(self) -> DistillLoss:
        """The same mix without the feature terms (for students whose layers are wrapped, e.g. pruned)."""
        return DistillLoss(self.temperature, self.alpha, self.logit_weight, dkd_target_weight=self.dkd_target_weight,
                           dkd_nontarget_weight=self.dkd_nontarget_weight,
                           logit_standardize=self.logit_standardize)  # fmt: skip


# ---- teachers: precomputed targets and feature taps ----


@dataclass
class TeacherTargets:
    """The teacher(s)' outputs on the training images and their mirror images, computed once.

    probs[f] and logits[f] have shape (N, classes); f = 0 for the images, 1 for the flipped ones.
    With features, the first teacher's attention maps ((H, W) -> (views, N, H·W), one
    per `feature_taps` spatial size) and embedding (views, N, D: the input of its logits layer), so
    attention transfer and relational KD never run the teacher while the student trains.
    """

    probs: np.ndarray
    logits: np.ndarray
    attention: dict[tuple[int, int], np.ndarray] | None = None
    embedding: np.ndarray | None = None


def teacher_targets(
    teachers: Sequence[keras.Model],
    x_uint8: np.ndarray,
    temperature: float,
    flips: bool,
    batch_size: int = 512,
    standardise: bool = False,
    features: bool = False,
) -> TeacherTargets:
    """Averaged softened outputs (at T, of z-scored logits with `standardise`) and averaged raw
    logits of every teacher, unaugmented and flipped; with `features`, the first teacher's
    attention maps and embedding as well."""
    views = [to_float(x_uint8)]
    if flips:
        views.append(views[0][:, :, ::-1, :])
    probs, logits = [], []
    for view in views:
        member_logits = [t.predict(view, batch_size=batch_size, verbose=0) for t in teachers]
        probs.append(np.mean([soft_targets(z, temperature, standardise).numpy() for z in member_logits], axis=0))
        logits.append(np.mean(member_logits, axis=0))
    targets = TeacherTargets(np.stack(probs).astype(np.float32), np.stack(logits).astype(np.float32))
    if features:
        targets.attention, targets.embedding = teacher_maps(teachers[0], views, batch_size)
    return targets


def teacher_maps(
    teacher: keras.Model, views: Sequence[np.ndarray], batch_size: int = 512
) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray]:
    """The teacher's attention map at each `feature_taps` spatial size and its embedding, per view.
    Batch by batch: whole feature maps of every image would not fit in memory, their maps do."""
    taps = feature_taps(teacher)
    tapped = _tap_model(teacher, list(taps.values()))
    maps: dict[tuple[int, int], list[list[np.ndarray]]] = {size: [[] for _ in views] for size in taps}
    embedding: list[list[np.ndarray]] = [[] for _ in views]
    for v, view in enumerate(views):
        for start in range(0, len(view), batch_size):
            outs = tapped(view[start : start + batch_size], training=False)
            for size, feats in zip(taps, outs, strict=False):
                maps[size][v].append(attention_map(feats).numpy())
            embedding[v].append(outs[len(taps)].numpy())
    stacked = {size: np.stack([np.concatenate(m) for m in per_view]) for size, per_view in maps.items()}
    return stacked, np.stack([np.concatenate(e) for e in embedding]).astype(np.float32)


def feature_taps(model: keras.Model) -> dict[tuple[int, int], str]:
    """Spatial size -> name of the last ReLU layer at that size (the end of each resolution stage).
    Hints and attention transfer pair a student's and a teacher's taps of the same size."""
    by_size: dict[tuple[int, int], str] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU) and len(layer.output.shape) == 4:
            by_size[tuple(layer.output.shape[1:3])] = layer.name
    return by_size


def _tap_model(model: keras.Model, names: Sequence[str]) -> keras.Model:
    """The model with extra outputs: the named layers' outputs, the embedding (the input of the
    logits layer, which relational KD compares), then the logits."""
    outs = [model.get_layer(n).output for n in names]
    return keras.Model(model.inputs, [*outs, model.layers[-1].input, model.outputs[0]])


# ---- the training loop ----


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
    `teacher` on each batch. `p` holds epochs, batch_size, learning_rate and augment_flip.
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
    steps = int(np.ceil(n / p["batch_size"]))
    schedule = keras.optimizers.schedules.CosineDecay(p["learning_rate"], decay_steps=p["epochs"] * steps)
    optimizer = keras.optimizers.Adam(schedule)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x_all = to_float(x_train)
    rng = np.random.default_rng(seed)

    trainable = list(student.trainable_variables)
    sizes, s_model, t_model, adapters, extras = [], student, None, [], []
    if loss.uses_features:  # student and teacher layers pair by spatial size
        s_taps = feature_taps(student)
        t_taps = feature_taps(teacher) if teacher is not None else targets.attention
        sizes = [z for z in t_taps if z in s_taps]
        s_model = _tap_model(student, [s_taps[z] for z in sizes])
        if loss.hint_weight > 0:
            t_model = _tap_model(teacher, [t_taps[z] for z in sizes])
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

    sig = [tf.TensorSpec([None, *x_all.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int64),
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
        order = rng.permutation(n)
        flip = rng.random(n) < 0.5 if p["augment_flip"] else np.zeros(n, bool)
        total, correct = 0.0, 0.0
        for b in range(steps):
            idx = order[b * p["batch_size"] : (b + 1) * p["batch_size"]]
            xb = x_all[idx]
            fb = flip[idx]
            xb[fb] = xb[fb][:, :, ::-1, :]
            if targets is not None:
                view = fb.astype(np.int64) if len(targets.probs) > 1 else np.zeros(len(idx), np.int64)
                probs, logits = targets.probs[view, idx], targets.logits[view, idx]
            else:
                probs = logits = np.zeros((len(idx), num_classes), np.float32)
            for cb in callbacks:
                cb.on_train_batch_begin(b)
            value, right = train_step(xb, y_all[idx], probs, logits, tuple(a[view, idx] for a in extras))
            total += float(value) * len(idx)
            correct += float(right)
        for cb in callbacks:
            cb.on_epoch_end(epoch)
        val_acc = accuracy(student, x_val, y_val)
        history["loss"].append(total / n)
        history["accuracy"].append(correct / n)
        history["val_accuracy"].append(val_acc)
        history["seconds"].append(round(time.time() - t0, 1))
        log.info("epoch %d/%d %.0fs loss=%.4f accuracy=%.4f val_accuracy=%.4f", epoch + 1, p["epochs"],
                 history["seconds"][-1], total / n, correct / n, val_acc)  # fmt: skip
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


def accuracy(model: keras.Model, x_uint8: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Top-1 accuracy in inference mode, batch by batch (no Keras predict loop overhead)."""
    right = 0
    for start in range(0, len(x_uint8), batch_size):
        logits = model(to_float(x_uint8[start : start + batch_size]), training=False)
        right += int(np.sum(np.argmax(logits, -1) == y[start : start + batch_size]))
    return right / max(len(y), 1)


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the 95 % confidence interval of the mean (Student's t,
    n − 1 degrees of freedom) of per-seed figures; one value has std 0 and no interval."""
    v = np.asarray(values, dtype=np.float64)
    out = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    if len(v) > 1:
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(v) - 1)) * out["std"] / np.sqrt(len(v))
        out.update(ci95_low=out["mean"] - half, ci95_high=out["mean"] + half)
    return out
