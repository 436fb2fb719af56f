"""Generated image-classification datasets of any shape, to try the pipeline on data that is not
Fashion-MNIST without downloading anything (`edgesmith make-dataset`).

A class is a shape (circle, upright square, tall diamond, triangle, ...) and, past ten classes, also a colour family:
class c is shape c mod 10 in hue family c // 10. Every image draws its class's shape at a random
position, size and rotation, in a jittered colour, over a textured background with a distractor
blob of another colour, plus pixel noise; a model has to learn shape and colour, not one pixel.
Pure NumPy and Pillow, seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "ring", "hbar", "vbar", "hexagon")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "star":
        pts = [(r if i % 2 == 0 else r * 0.45, angle + i * math.pi / 5) for i in range(10)]
    else:
        corners = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}[kind]
        offset = math.pi / 4 if kind == "square" else 0.0
        pts = [(r * (0.6 if kind == "diamond" and i % 2 else 1.0), angle + offset + i * 2 * math.pi / corners)
               for i in range(corners)]  # fmt: skip
    return [(cx + d * math.cos(a), cy + d * math.sin(a)) for d, a in pts]


def _draw(draw, kind: str, cx: float, cy: float, r: float, angle: float, colour: tuple[int, int, int]) -> None:
    if kind in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=None if kind == "ring" else colour, outline=colour,
                     width=max(1, int(r / 3)))  # fmt: skip
    elif kind in ("hbar", "vbar", "cross"):
        w, h = (r, r / 3) if kind != "vbar" else (r / 3, r)
        draw.rectangle([cx - w, cy - h, cx + w, cy + h], fill=colour)
        if kind == "cross":
            draw.rectangle([cx - h, cy - w, cx + h, cy + w], fill=colour)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=colour)


def _hue_rgb(hue: float, rng: np.random.Generator) -> tuple[int, int, int]:
    import colorsys

    s, v = rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0)
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1.0, s, v))  # type: ignore[return-value]


def make_images(n: int, classes: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` RGB uint8 images (n, size, size, 3) with balanced int64 labels 0..classes-1."""
    from PIL import Image, ImageDraw

    if classes < 2 or classes > 10 * 10:
        raise ValueError("classes must be 2 to 100")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    families = -(-classes // len(SHAPES))
    x = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, c in enumerate(y):
        base = rng.integers(20, 90, 3)
        texture = rng.normal(0, 12, (size // 4 + 1, size // 4 + 1, 3))
        bg = np.clip(base + np.kron(texture, np.ones((4, 4, 1)))[:size, :size], 0, 255).astype(np.uint8)
        im = Image.fromarray(bg)
        draw = ImageDraw.Draw(im)
        hue = (c // len(SHAPES)) / families + rng.uniform(-0.25, 0.25) / families if families > 1 else rng.random()
        r = rng.uniform(0.18, 0.32) * size
        d = rng.uniform(0.08, 0.14) * size  # the distractor: a smaller blob in another colour
        dx, dy = rng.uniform(d, size - d, 2)
        draw.ellipse([dx - d, dy - d, dx + d, dy + d], fill=_hue_rgb(hue + 0.5, rng))
        cx, cy = rng.uniform(r, size - r, 2)
        kind = SHAPES[c % len(SHAPES)]
        turn = rng.uniform(-0.25, 0.25) if kind in ("square", "diamond") else rng.uniform(0, 2 * math.pi)
        _draw(draw, kind, cx, cy, r, turn, _hue_rgb(hue, rng))
        noisy = np.asarray(im, dtype=np.int16) + rng.integers(-15, 16, (size, size, 3))
        x[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return x, y.astype(np.int64)


def class_names(classes: int) -> list[str]:
    families = -(-classes // len(SHAPES))
    return [SHAPES[c % len(SHAPES)] + (f"-{c // len(SHAPES)}" if families > 1 else "") for c in range(classes)]


def write(out: str | Path, fmt: str, n: int, classes: int, size: int, grayscale: bool = False, seed: int = 0,
          test: int = 0) -> Path:  # fmt: skip
    """A dataset on disk: `folder` (one sub-folder of PNGs per class name) or `npz` (x_train,
    y_train, x_test, y_test, class_names; `test` images in the test split)."""
    from PIL import Image

    from pipelines.vision.data import set_channels

    out = Path(out)
    x, y = make_images(n + test, classes, size, seed)
    if grayscale:
        x = set_channels(x, "grayscale")
    names = class_names(classes)
    if fmt == "npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:], class_names=np.array(names))
        return out
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(img[..., 0] if grayscale else img).save(out / names[label] / f"{i:06d}.png")
    return out
