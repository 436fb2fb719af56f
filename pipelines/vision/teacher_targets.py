"""What the teacher(s) give the student, computed once before it trains: averaged soft targets
and logits on the training images and their mirror images, and for attention transfer and
relational KD the first teacher's attention maps and embedding (`feature_taps` pair a student's
and a teacher's layers by spatial size). A teacher ensemble averages its members' outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.vision.losses import attention_map, soft_targets
from pipelines.vision.tfk import keras
from pipelines.vision.train import to_float


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


CHUNK_BYTES = 128 * 2**20


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
    n_views = 2 if flips else 1
    member_logits: list[list[list[np.ndarray]]] = [[[] for _ in teachers] for _ in range(n_views)]
    # images made float at a time: about CHUNK_BYTES, a multiple of the batch (so the batches are one pass's)
    chunk = batch_size * max(1, CHUNK_BYTES // (4 * int(np.prod(x_uint8.shape[1:])) * batch_size))
    for start in range(0, len(x_uint8), chunk):
        view = to_float(x_uint8[start : start + chunk])
        for v in range(n_views):
            for t, teacher in enumerate(teachers):
                member_logits[v][t].append(teacher.predict(view if v == 0 else view[:, :, ::-1, :], batch_size=batch_size,
                                                           verbose=0))  # fmt: skip
    probs, logits = [], []
    for per_view in member_logits:
        z_views = [np.concatenate(parts) for parts in per_view]
        probs.append(np.mean([soft_targets(z, temperature, standardise).numpy() for z in z_views], axis=0))
        logits.append(np.mean(z_views, axis=0))
    targets = TeacherTargets(np.stack(probs).astype(np.float32), np.stack(logits).astype(np.float32))
    if features:
        views = [to_float(x_uint8)]
        views += [views[0][:, :, ::-1, :]] if flips else []
        targets.attention, targets.embedding = teacher_maps(teachers[0], views, batch_size)
    return targets


def teacher_maps(
    teacher: keras.Model, views: Sequence[np.ndarray], batch_size: int = 512
) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray]:
    """The teacher's attention map at each `feature_taps` spatial size and its embedding, per view.
    Batch by batch: whole feature maps of every image would not fit in memory, their maps do."""
    taps = feature_taps(teacher)
    tapped = tap_model(teacher, list(taps.values()))
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


def tap_model(model: keras.Model, names: Sequence[str]) -> keras.Model:
    """The model with extra outputs: the named layers' outputs, the embedding (the input of the
    logits layer, which relational KD compares), then the logits."""
    outs = [model.get_layer(n).output for n in names]
    return keras.Model(model.inputs, [*outs, model.layers[-1].input, model.outputs[0]])
