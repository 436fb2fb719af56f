"""The search space over the student family (`build_student`'s keys): the keras-tuner hyperparameters,
their mapping to `student` keys, and the fingerprint that catches two settings building one network."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# After tfk: keras_tuner imports TensorFlow, which must see tfk's TF_USE_LEGACY_KERAS first.
import keras_tuner as kt  # noqa: E402
import numpy as np

from pipelines.common.seeding import seed_everything
from pipelines.vision.tfk import keras

SEARCH_BLOCKS = ("separable", "standard")


SEARCH_HEADS = ("flatten", "gap")


FINGERPRINT_SEED = 1234  # the weights every fingerprinted model is built with


PROBE_IMAGES = 8


def search_space(p: Mapping[str, Any], input_shape: Sequence[int], student: Mapping[str, Any]) -> dict[str, Any]:
    """The search space from the `search` params (the rules between keys are the schema's) for
    this input shape: `stem_downsamples: auto` are the factors that suit it (`stem_downsamples`)."""
    from pipelines.common.params import comma_list
    from pipelines.vision.student import stem_downsamples

    space = {k: p[k] for k in ("kernel_sizes", "expansions", "squeeze_excite", "stem_stride", "width_percents", "depths", "widths")}
    for key, allowed in (("blocks", SEARCH_BLOCKS), ("heads", SEARCH_HEADS)):
        space[key] = comma_list(p[key], f"search.{key}", allowed, required=True)
    factors = p["stem_downsamples"]
    if factors == "auto":
        factors = stem_downsamples(tuple(input_shape), dict(student))
    space["stem_downsamples"] = sorted(set(factors))
    return space


def define_space(hp: kt.HyperParameters, space: Mapping[str, Any]) -> kt.HyperParameters:
    """Kernel size, block type, expansion (separable blocks only), squeeze-excite, strided stem, width multiplier,
    depth and the width of each block that depth makes active, head."""
    hp.Choice("kernel_size", list(space["kernel_sizes"]))
    hp.Choice("block", list(space["blocks"]))
    with hp.conditional_scope("block", ["separable"]):
        hp.Choice("expansion", list(space["expansions"]))
    se = {"never": [False], "always": [True], "both": [False, True]}[space["squeeze_excite"]]
    hp.Choice("squeeze_excite", se)
    hp.Choice("stem_stride", {"never": [False], "always": [True], "both": [False, True]}[space["stem_stride"]])
    hp.Choice("width_percent", list(space["width_percents"]))
    if len(space["stem_downsamples"]) > 1:  # one factor is no choice: the student's own applies
        hp.Choice("stem_downsample", list(space["stem_downsamples"]))
    depths = sorted(space["depths"])
    hp.Choice("depth", depths)
    for i in range(max(depths)):
        with hp.conditional_scope("depth", [d for d in depths if d > i]):
            hp.Choice(f"width{i}", list(space["widths"]))
    hp.Choice("head", list(space["heads"]))
    return hp


def random_values(hyperparameters: kt.HyperParameters, rng: random.Random, parent: Mapping[str, Any] | None = None,
                  mutate: str | None = None, other_value: Callable[[Any, Any, random.Random], Any] | None = None) -> dict:  # fmt: skip
    """Active values of the space: the parent's, `mutate` changed (by `other_value`), the rest sampled."""
    hps = kt.HyperParameters()
    for hp in hyperparameters.space:
        hps.merge([hp])
        if not hps.is_active(hp):
            continue
        if parent is not None and hp.name in parent and hp.name != mutate:
            hps.values[hp.name] = parent[hp.name]
        elif hp.name == mutate and other_value is not None:
            hps.values[hp.name] = other_value(hp, parent[hp.name], rng)
        else:
            hps.values[hp.name] = hp.random_sample(rng.randrange(2**31))
    return {k: v for k, v in hps.values.items() if hps.is_active(k)}


def arch_from_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters as `student` keys (what `distill --arch` reads)."""
    block = values["block"]
    extra = {"stem_downsample": int(values["stem_downsample"])} if "stem_downsample" in values else {}
    return {
        **extra,
        "ds_widths": [int(values[f"width{i}"]) for i in range(int(values["depth"]))],
        "head": values["head"],
        "kernel_size": int(values["kernel_size"]),
        "block": block,
        "expansion": int(values.get("expansion", 1)) if block == "separable" else 1,
        "squeeze_excite": bool(values["squeeze_excite"]),
        "stem_stride": bool(values["stem_stride"]),
        "width_multiplier": int(values["width_percent"]) / 100,
    }


def values_hash(values: Mapping[str, Any]) -> str:
    """A stable hash of a trial's hyperparameters (keras-tuner's `tuner/*` bookkeeping left out)."""
    kept = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(model: keras.Model, probe: np.ndarray) -> str:
    """Functional-equivalence fingerprint: the outputs on a fixed probe batch, rounded, hashed.

    Taken on the untrained model built with fixed seeds (`build_fingerprinted`), so a duplicate is
    caught before it costs any training: two hyperparameter sets that build the same network get the
    same weights and so the same outputs; different networks almost surely do not.
    """
    out = model(probe, training=False).numpy()
    blob = np.round(out.astype(np.float64), 4).tobytes() + str(model.count_params()).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_fingerprinted(build: Callable[[], keras.Model]) -> keras.Model:
    keras.backend.clear_session()
    seed_everything(FINGERPRINT_SEED)
    return build()


def values_of(student: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hyperparameters that build `student` (its `stem_downsample` resolved for the input), or
    None when the space cannot express it."""
    from pipelines.vision.student import STUDENT_DEFAULTS

    s = {**STUDENT_DEFAULTS, **student}
    widths = list(s["ds_widths"])
    values = {"kernel_size": s["kernel_size"], "block": s["block"], "squeeze_excite": bool(s["squeeze_excite"]),
              "stem_stride": bool(s["stem_stride"]), "width_percent": round(s["width_multiplier"] * 100), "depth": len(widths), "head": s["head"],
              **{f"width{i}": w for i, w in enumerate(widths)}}  # fmt: skip
    if s["block"] == "separable":
        values["expansion"] = s["expansion"]
    if len(space["stem_downsamples"]) > 1:
        values["stem_downsample"] = s["stem_downsample"]
    hp = define_space(kt.HyperParameters(), space)
    hp.values.update(values)
    for h in hp.space:
        active = hp.is_active(h)
        if active != (h.name in values) or active and values[h.name] not in h.values:
            return None
    return values if arch_from_values(values) == {k: s[k] for k in arch_from_values(values)} else None


def probe_batch(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """The fixed inputs every fingerprint is taken on: uniform noise in the model's input range."""
    return np.random.default_rng(seed).random((PROBE_IMAGES, *shape)).astype(np.float32)
