"""Shared fixtures: tiny datasets written in the real formats, and tiny TFLite models."""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "profiles" / "quick"


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write an array in the idx format (uint8 data), gzipped when the name ends in .gz."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    blob = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def make_images(n: int, classes: int = 10, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic images: each class is a bright bar at its own position, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    band = max(size // classes, 1)
    for i, c in enumerate(y):
        x[i, :, c * band : c * band + band] = 220
    return x, y.astype(np.uint8)


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A Fashion-MNIST-shaped folder of four gzipped idx files (200 train, 60 test images)."""
    root = tmp_path / "idx"
    root.mkdir()
    x, y = make_images(200, seed=1)
    xt, yt = make_images(60, seed=2)
    write_idx(root / "train-images-idx3-ubyte.gz", x)
    write_idx(root / "train-labels-idx1-ubyte.gz", y)
    write_idx(root / "t10k-images-idx3-ubyte.gz", xt)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", yt)
    return root


def data_params(source: str, path: Path, **overrides) -> dict:
    p = {"source": source, "path": str(path), "val_fraction": 0.1, "min_val_per_class": 0, "test_fraction": 0.2,
         "color": "auto", "image_size": None, "class_names": None, "max_train": 0, "max_test": 0}  # fmt: skip
    p.update(overrides)
    return p


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """A small CNN trained briefly on synthetic images, converted to fp32 and int8 TFLite."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import convert
    from pipelines.vision.tfk import keras

    out = tmp_path_factory.mktemp("tiny_models")
    seed_everything(0)
    x, y = make_images(600, size=16, seed=3)
    x = x[..., None]
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = keras.layers.DepthwiseConv2D(3, activation="relu")(h)
    h = keras.layers.Flatten()(keras.layers.MaxPool2D(2)(h))
    logits = keras.layers.Dense(10)(h)
    model = keras.Model(inputs, logits)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x.astype("float32") / 255.0, y, epochs=15, batch_size=32, verbose=0)
    fp32 = out / "tiny_fp32.tflite"
    int8 = out / "tiny_int8.tflite"
    fp32.write_bytes(convert.to_tflite_fp32(model))
    int8.write_bytes(convert.to_tflite_int8(model, x[:100]))
    return {"keras": model, "fp32": fp32, "int8": int8, "x": x, "y": y.astype(np.int64)}


def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """300 one-channel 16x16 synthetic images and their int64 labels."""
    x, y = make_images(300, size=16, seed=11)
    return x[..., None], y.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_teacher():
    """A small teacher trained briefly on `tiny_images`, and those (x, y)."""
    from pipelines.common.seeding import seed_everything
    from pipelines.vision import train
    from tests.test_train import P

    x, y = tiny_images()
    seed_everything(0)
    teacher = train.build_teacher((16, 16, 1), 10, P)
    train.train_classifier(teacher, x[:240], y[:240], x[240:], y[240:], {**P, "epochs": 4}, 0)
    return teacher, x, y


def run_env() -> dict:
    """Environment for subprocesses: this interpreter's venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
