"""Screening before any training: many candidates of the space ranked at almost no cost, so that
only the promising ones become trials.

Two tiers. Every candidate is built untrained and scored by NASWOT (Mellor et al., "Neural
Architecture Search without Training", ICML 2021): on one batch of training images, each ReLU's
on/off pattern is a binary code per image; K[i, j] counts the units on which images i and j agree,
and the score is log|K|. A network whose ReLUs already tell the images apart scores high. Its
parameters and the multiply-accumulates of its convolutions and dense layers come from the Keras
graph. The first non-dominated fronts of (score high, MACs low) are then converted to int8 TFLite,
the file that would ship, and costed like a trial (size, MACs, memory access, target latency);
candidates over a `search.max_*` limit are dropped here and never become trials. The shortlist is
the first non-dominated fronts of (score high, latency low) among the rest.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.pareto import fronts
from pipelines.vision.tfk import keras, tf

log = logging.getLogger("pipelines.vision.search")

# After tfk: keras_tuner imports TensorFlow, which must see tfk's TF_USE_LEGACY_KERAS first.
import keras_tuner as kt  # noqa: E402

from pipelines.vision.search.objective import over_limits  # noqa: E402
from pipelines.vision.search.space import define_space, random_values, values_hash  # noqa: E402


def naswot(model: keras.Model, images: np.ndarray) -> float:
    """NASWOT's score log|K_H| of an untrained model on a float batch (N, H, W, C).

    K_H = sum over ReLU layers of C C^T + (1 - C)(1 - C)^T, C the images' binary activation codes;
    BatchNorm normalises with the batch's own statistics, as in the paper's untrained networks."""
    relus = [layer.output for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    if not relus:
        raise ValueError(f"{model.name}: no ReLU layer to score")
    probe = keras.Model(model.inputs, relus)
    outputs = probe(tf.convert_to_tensor(images), training=True)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    n = len(images)
    kernel = np.zeros((n, n), dtype=np.float64)
    for out in outputs:
        codes = (out.numpy().reshape(n, -1) > 0).astype(np.float64)
        kernel += codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


def compute_macs(model: keras.Model) -> int:
    """Multiply-accumulates of the convolutions and dense layers of a Keras model (per image)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output_shape[1:])) * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output_shape[1:])) * kh * kw * int(layer.input_shape[-1]) // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.output_shape[1:])) * int(layer.input_shape[-1])
    return total


def sample(space: Mapping[str, Any], n: int, seed: int, exclude: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """Up to `n` distinct candidates drawn uniformly from the space, none equal to one of `exclude`."""
    hp = define_space(kt.HyperParameters(), space)
    rng = random.Random(f"screen-{seed}")
    seen = {values_hash(v) for v in exclude}
    out: list[dict] = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        values = random_values(hp, rng)
        key = values_hash(values)
        if key not in seen:
            seen.add(key)
            out.append(values)
    return out


def _take(order: list[list[int]], keep: int, tiebreak: Callable[[int], float]) -> list[int]:
    """The first `keep` indices of non-dominated fronts, the last front cut by `tiebreak` (lowest first)."""
    taken: list[int] = []
    for front in order:
        taken.extend(sorted(front, key=tiebreak)[: keep - len(taken)])
        if len(taken) >= keep:
            break
    return taken


def screen(candidates: Sequence[Mapping[str, Any]], build: Callable[[Mapping[str, Any]], keras.Model],
           images: np.ndarray, p: Mapping[str, Any],
           costs_of: Callable[[Sequence[Mapping[str, Any]]], list[dict]]) -> list[dict]:  # fmt: skip
    """Screen `candidates` (search params `p`: screen_convert, screen_keep and the max_* limits).

    `build(values)` makes the untrained model, `images` is the float probe batch, `costs_of(values
    list)` returns each candidate's int8 file costs (as `file_costs`). One row per candidate:
    values, values_hash, proxy, keras_params, compute_macs, and `screening`: `shortlisted`,
    `over limit` (with `reason` and costs), `not shortlisted` (costed, behind the shortlist) or
    `not costed` (behind the first tier's cut)."""
    t0 = time.time()
    rows = []
    for i, values in enumerate(candidates):
        keras.backend.clear_session()
        model = build(values)
        rows.append({"values": dict(values), "values_hash": values_hash(values), "proxy": naswot(model, images),
                     "keras_params": int(model.count_params()), "compute_macs": compute_macs(model),
                     "screening": "not costed"})  # fmt: skip
        if (i + 1) % 50 == 0 or i + 1 == len(candidates):
            log.info("search: screening: %d/%d candidates scored (%.0f s)", i + 1, len(candidates), time.time() - t0)
    finite = [i for i, r in enumerate(rows) if np.isfinite(r["proxy"])]
    tier1 = _take(fronts([(-rows[i]["proxy"], rows[i]["compute_macs"]) for i in finite]), p["screen_convert"],
                  lambda k: -rows[finite[k]]["proxy"])  # fmt: skip
    costed = [finite[k] for k in tier1]
    for i, costs in zip(costed, costs_of([rows[i]["values"] for i in costed]), strict=True):
        broken = over_limits(costs, p)
        rows[i].update(costs, screening="over limit" if broken else "not shortlisted")
        if broken:
            rows[i]["reason"] = "; ".join(broken)
    feasible = [i for i in costed if rows[i]["screening"] == "not shortlisted"]
    keep = _take(fronts([(-rows[i]["proxy"], rows[i]["latency_ms"]) for i in feasible]), p["screen_keep"],
                 lambda k: -rows[feasible[k]]["proxy"])  # fmt: skip
    for k in keep:
        rows[feasible[k]]["screening"] = "shortlisted"
    log.info("search: screening: %d candidates scored, %d costed as int8 files, %d over a limit, %d shortlisted (%.0f s)",
             len(rows), len(costed), len(costed) - len(feasible), len(keep), time.time() - t0)  # fmt: skip
    return rows


def shortlist(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The shortlisted candidates' values, best proxy first."""
    kept = sorted((r for r in rows if r["screening"] == "shortlisted"), key=lambda r: -r["proxy"])
    return [dict(r["values"]) for r in kept]


SCREENING = "screening.json"


def screened(project: Path, tuner: Any, space: Mapping[str, Any], seed: int,
             exclude: Sequence[Mapping[str, Any]] = ()) -> list[dict]:  # fmt: skip
    """The search's screening: read back from the project folder, or run (`search.screen_candidates`
    drawn from the space, none of `exclude`) and kept there, so a resumed search screens once.
    `tuner` is the `ArchTuner`: it builds and costs the candidates, and remembers their costs."""
    from pipelines.common import io

    path = Path(project) / SCREENING
    if path.is_file():
        rows = json.loads(path.read_text())
        log.info("search: screening read back from %s (%d candidates)", path, len(rows))
    else:
        p = tuner.p
        candidates = sample(space, p["screen_candidates"], seed, exclude)
        rows = screen(candidates, tuner.build_model, tuner.proxy_images, p, tuner.costs_of)
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write_json(path, rows)
    for r in rows:
        if "latency_ms" in r:
            tuner.known_costs[r["values_hash"]] = {k: v for k, v in r.items() if k not in ("values", "screening", "reason")}
    return rows
