"""The student family: a small mobile-style CNN built from a dict of hyperparameters (the
`student` params, or a search result that overrides some of them)."""

from __future__ import annotations

import json

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.common.params import SCHEMA
from pipelines.vision.tfk import keras

# What a search result may leave out: these build exactly the original student family.
STUDENT_DEFAULTS = {"kernel_size": 3, "block": "separable", "expansion": 1, "squeeze_excite": False,
                    "width_multiplier": 1.0, "stem_stride": False, "stem_downsample": 1}  # fmt: skip

# The blocks after the stem work best on feature maps of about this many pixels a side.
BLOCK_MAP_PX = (7, 14)


def stem_downsamples(input_shape: tuple[int, ...], arch: dict) -> list[int]:
    """The extra stem downsampling factors (1, 2, 4, ...; each stem conv can stride once) that bring
    the blocks' feature maps to `BLOCK_MAP_PX` for this input; the cheapest factor above that range
    when none falls in it."""
    side = min(input_shape[0], input_shape[1]) / 2 ** len(arch["stem_widths"])
    factors = [2**i for i in range(len(arch["stem_widths"]) + 1)]
    fits = [f for f in factors if BLOCK_MAP_PX[0] <= side / f <= BLOCK_MAP_PX[1]]
    return fits or [next((f for f in factors if side / f <= BLOCK_MAP_PX[1]), factors[-1])]


def resolve_arch(input_shape: tuple[int, ...], arch: dict) -> dict:
    """`arch` with defaults filled in and `stem_downsample: auto` replaced by the factor for this
    input (the smallest of `stem_downsamples`)."""
    arch = {**STUDENT_DEFAULTS, **arch}
    if arch["stem_downsample"] == "auto":
        arch["stem_downsample"] = stem_downsamples(input_shape, arch)[0]
    return arch


def student_arch(params: dict, arch_path: str | None) -> dict:
    """The `student` params, overridden by the keys of a search result JSON when one is given."""
    arch = dict(params)
    if arch_path:
        try:
            found = io.read_json(arch_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{arch_path}: not a readable JSON file ({exc})") from None
        found = found.get("student", found) if isinstance(found, dict) else found
        if not isinstance(found, dict):
            raise UserError(f"{arch_path}: expected a JSON object of student hyperparameters")
        for key, value in found.items():
            spec = SCHEMA["student"].get(key)
            if spec is None:
                raise UserError(f"{arch_path}: unknown student key {key!r}; allowed: {', '.join(SCHEMA['student'])}")
            if not spec.check(value):
                raise UserError(f"{arch_path}: student.{key} must be {spec.describe()}, got {json.dumps(value)}")
        arch.update(found)
    return arch


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
    stem conv stride 2 instead of conv + max-pool, which spares the slowest int8 kernel of x86
    XNNPACK (a conv from one input channel at full resolution). `stem_downsample` d (a power of 2,
    or `auto` for the input's size) makes the first log2(d) stem convs that do not stride already
    stride 2 as well, so a large input reaches the blocks at about 7 to 14 pixels a side. Keys
    left out take `STUDENT_DEFAULTS`, which build the original family.
    """
    arch = resolve_arch(input_shape, arch)
    bn, mult = arch["bn_momentum"], float(arch["width_multiplier"])
    extra = int(arch["stem_downsample"]).bit_length() - 1
    if 2**extra != arch["stem_downsample"] or extra > len(arch["stem_widths"]):
        raise UserError(f"student.stem_downsample must be 'auto' or a power of 2 up to {2 ** len(arch['stem_widths'])} "
                        f"with these stem_widths, got {arch['stem_downsample']}")  # fmt: skip
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, width in enumerate(arch["stem_widths"]):
        strided = i == 0 and arch["stem_stride"] and extra == 0  # a strided conv instead of conv + pool
        x = layers.Conv2D(scaled_width(width, mult), 3, strides=2 if strided or i < extra else 1, padding="same", use_bias=False,
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
