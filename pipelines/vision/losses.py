"""Distillation losses and how they mix. Each loss takes a batch of tensors and returns a scalar.

The losses follow the papers: Hinton et al. (2015) soft targets at temperature T scaled by T²;
Ba & Caruana (2014) L2 between logits; Romero et al. (2015) FitNets hints through a 1×1 adapter;
Zagoruyko & Komodakis (2017) attention transfer; Park et al. (2019) relational KD (distance and
angle); Zhao et al. (2022) decoupled KD (target-class and non-target-class terms weighted apart);
Sun et al. (2024) logit standardisation (each row of logits z-scored before the Hinton term's
softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pipelines.vision.tfk import tf


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
