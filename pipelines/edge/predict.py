"""`edgesmith predict`: classify image files with a .tflite model in the TFLite runtime alone.

Images are read as the data stage reads them (`pipelines.vision.data.read_image`: 16-bit scaled
to 8, palette and alpha flattened), resized to the model's input (antialiased bilinear), reduced
to one channel when the model takes one, and scaled to [0, 1] as in training. The class names
travel with the model: the pipeline writes `labels.txt` (one name per line, in label order)
beside every .tflite file it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.common.errors import UserError
from pipelines.edge import evaluate, runtime

LABELS_FILE = "labels.txt"


def write_labels(folder: str | Path, names: Sequence[str]) -> Path:
    path = Path(folder) / LABELS_FILE
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def read_labels(model: str | Path, labels: str | Path | None = None) -> list[str] | None:
    """The class names for `model`: `labels`, else the labels.txt beside it, else None."""
    path = Path(labels) if labels else Path(model).with_name(LABELS_FILE)
    if not path.is_file():
        if labels:
            raise UserError(f"{path}: labels file not found")
        return None
    return [line.rstrip("\n") for line in path.read_text().splitlines()]


def load_images(paths: Sequence[str | Path], shape: Sequence[int]) -> np.ndarray:
    """Image files as the float32 batch (N, H, W, C) a model of input `shape` (H, W, C) takes."""
    from pipelines.vision.data import read_image, set_channels

    h, w, c = (int(v) for v in shape)
    images = []
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"{p}: file not found")
        rgb, _ = read_image(Path(p), (h, w))
        images.append(set_channels(rgb[None], "grayscale" if c == 1 else "rgb")[0])
    return np.stack(images).astype(np.float32) / 255.0


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def predict(model: str | Path, images: Sequence[str | Path], top: int = 3, labels: str | Path | None = None) -> list[dict]:
    """Per image, the `top` classes with names and probabilities (softmax of the model's logits)."""
    interpreter = runtime.load(model)
    shape = interpreter.get_input_details()[0]["shape"][1:]
    if len(shape) != 3:
        raise UserError(f"{model}: takes inputs of shape {list(shape)}, not images (H, W, C)")
    names = read_labels(model, labels)
    probs = softmax(evaluate.predict(model, load_images(images, shape), batch_size=32, threads=1))
    if names is not None and len(names) != probs.shape[-1]:
        raise UserError(f"{labels or Path(model).with_name(LABELS_FILE)}: {len(names)} names for {probs.shape[-1]} classes")
    out = []
    for path, p in zip(images, probs, strict=True):
        order = np.argsort(-p)[:top]
        out.append({"image": str(path), "top": [{"class": int(i), "name": names[i] if names else str(int(i)),
                                                  "probability": round(float(p[i]), 6)} for i in order]})  # fmt: skip
    return out
