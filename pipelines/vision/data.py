"""Image datasets from idx files (Fashion-MNIST, MNIST), a .npz, or a folder per class.

Pure NumPy (and Pillow for folders): no TensorFlow here. Every loader returns uint8
images shaped (N, H, W, C) and int64 labels; every problem a user can cause raises
`DataError` with one line naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.common.errors import DataError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """Train/validation/test splits of uint8 images (N, H, W, C) with int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)

    SPLITS = ("train", "val", "test")

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for s in self.SPLITS:
            out[f"x_{s}"], out[f"y_{s}"] = getattr(self, f"x_{s}"), getattr(self, f"y_{s}")
        return out

    def save(self, path: str | Path) -> None:
        np.savez(path, **self.arrays(), class_names=np.array(self.class_names))

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(**{k: z[k] for k in z.files if k != "class_names"}, class_names=list(z["class_names"]))
        except (OSError, ValueError, KeyError, zlib.error) as exc:
            raise DataError(f"{path}: not a prepared dataset ({exc})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (optionally gzipped): magic, dimensions, then the data."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an idx file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or padded idx data: header says {dims} ({expected} bytes), "
            f"file has {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root / (stem + '.gz')}: file not found (data.path must hold the four idx files)")


def load_idx(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: idx folder not found (install the Debian package dataset-fashion-mnist or set data.path)")
    files = {k: _find_idx(root, stem) for k, stem in IDX_FILES.items()}
    arrays = {k: read_idx(f) for k, f in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3:
            raise DataError(f"{files['x_' + split]}: expected images (N, H, W), got shape {list(x.shape)}")
        if y.ndim != 1:
            raise DataError(f"{files['y_' + split]}: expected labels (N,), got shape {list(y.shape)}")
        if len(x) != len(y):
            raise DataError(f"{files['y_' + split]}: {len(y)} labels for {len(x)} images")
    return (
        arrays["x_train"][..., None], arrays["y_train"].astype(np.int64),
        arrays["x_test"][..., None], arrays["y_test"].astype(np.int64),
    )  # fmt: skip


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)} (needs x_train, y_train, x_test, y_test)")
            xs = [np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except DataError:
        raise
    except (OSError, ValueError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    out = []
    for x, y, split in ((xs[0], xs[1], "train"), (xs[2], xs[3], "test")):
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise DataError(f"{path}: x_{split} must be (N, H, W) or (N, H, W, 1|3), got {x.shape}")
        if x.dtype != np.uint8:
            if x.min() < 0 or x.max() > 255:
                raise DataError(f"{path}: x_{split} must hold pixel values in 0..255")
            x = x.astype(np.uint8)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y_{split} must be (N,) with one label per image, got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y_{split} must hold integer labels, got {y.dtype}")
        out += [x, y.astype(np.int64)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{path}: train images {out[0].shape[1:]} and test images {out[2].shape[1:]} differ")
    return out[0], out[1], out[2], out[3]


def load_folder(root: str | Path, color: str = "grayscale") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images in one sub-folder per class; the sorted folder names are the classes."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s); need at least 2, one sub-folder per class")
    mode = "L" if color == "grayscale" else "RGB"
    images, labels, shape, first = [], [], None, None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{root / name}: class folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert(mode), dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from None
            if shape is None:
                shape, first = arr.shape, f
            elif arr.shape != shape:
                raise DataError(f"{f}: image is {arr.shape[1]}x{arr.shape[0]}, but {first} is {shape[1]}x{shape[0]}; resize to one size")
            images.append(arr)
            labels.append(label)
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray(labels, dtype=np.int64), classes


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with `fraction` of each class held out (at least one per class)."""
    keep, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def stratified_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    _, held = stratified_split(y, n / len(y), rng)
    return held


def prepare(params: dict, seed: int, base_dir: Path = Path(".")) -> Dataset:
    """Load the configured source and make deterministic train/validation/test splits."""
    rng = np.random.default_rng(seed)
    path = Path(params["path"]).expanduser()
    path = path if path.is_absolute() else base_dir / path
    source = params["source"]
    if source == "idx":
        x_train, y_train, x_test, y_test = load_idx(path)
    elif source == "npz":
        x_train, y_train, x_test, y_test = load_npz(path)
    else:
        x, y, names = load_folder(path, params["color"])
        tr, te = stratified_split(y, params["test_fraction"], rng)
        x_train, y_train, x_test, y_test = x[tr], y[tr], x[te], y[te]
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) == 0:
            raise DataError(f"{path}: the {split} split is empty")
    if source == "idx":
        names = list(FASHION_MNIST_CLASSES) if int(max(y_train.max(), y_test.max())) < 10 else []
    elif source == "npz":
        names = []
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = names or [str(i) for i in range(num_classes)]
    for split, y in (("train", y_train), ("test", y_test)):
        if y.min() < 0 or y.max() >= len(names):
            raise DataError(f"{path}: {split} labels must be in 0..{len(names) - 1}, found {y.min()}..{y.max()}")
    absent = sorted(set(range(num_classes)) - {int(v) for v in np.unique(y_train)})
    if absent and len(absent) < num_classes - 1:  # one class only is reported below
        shown = ", ".join(map(str, absent[:5])) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise DataError(f"{path}: labels run up to {num_classes - 1}, but {shown} never occur in the training split; "
                        "labels must be 0..N-1 with every class among the training images")  # fmt: skip
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{path}: the training split holds only one class; need at least 2")
    tr, va = stratified_split(y_train, params["val_fraction"], rng)
    tr = tr[stratified_subset(y_train[tr], params["max_train"], rng)]
    te = stratified_subset(y_test, params["max_test"], rng)
    return Dataset(
        x_train[tr], y_train[tr], x_train[va], y_train[va], x_test[te], y_test[te], class_names=list(names)
    )


def summary(ds: Dataset) -> dict:
    """Counts per class and split, the image shape, and a hash of the content."""
    import hashlib

    h = hashlib.sha256()
    for name, arr in ds.arrays().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    out: dict = {"image_shape": list(ds.x_train.shape[1:]), "num_classes": len(ds.class_names)}
    for s in Dataset.SPLITS:
        y = getattr(ds, f"y_{s}")
        out[f"{s}_count"] = int(len(y))
        out[f"{s}_per_class"] = {ds.class_names[c]: int((y == c).sum()) for c in range(len(ds.class_names))}
    out["content_sha256"] = h.hexdigest()
    out["class_names"] = ds.class_names
    return out
