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
# Fashion-MNIST's idx files are recognised by their training labels, and get its class names.
FASHION_MNIST_LABELS_SHA256 = "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"
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

    def example(self, n: int = 2) -> list:
        """The first `n` test images as the models take them (float32 in [0, 1]): MLflow's input example."""
        return (self.x_test[:n].astype(np.float32) / 255.0).tolist()

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


def to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8: uint8 as is; floats in [0, 1] scaled by 255; other values in 0..255 rounded;
    16-bit integers (above 255) scaled by 255 / 65535. Anything else is the user's to fix."""
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{where}: images must hold numbers (uint8, 16-bit integers or floats), got {x.dtype}")
    if x.size == 0:
        return x.astype(np.uint8)
    low, high = float(x.min()), float(x.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DataError(f"{where}: images hold NaN or infinite values")
    if low >= 0 and np.issubdtype(x.dtype, np.floating) and high <= 1.0:
        return np.rint(x * 255.0).astype(np.uint8)
    if low >= 0 and high <= 255:
        return np.rint(x).astype(np.uint8)
    if low >= 0 and high <= 65535 and np.issubdtype(x.dtype, np.integer):
        return np.rint(x.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    raise DataError(
        f"{where}: pixel values run {low:g}..{high:g}; expected uint8, floats in [0, 1] or [0, 255], "
        "or 16-bit integers in 0..65535"
    )


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 images (N, H, W, C) resized to size = (height, width), antialiased bilinear (Pillow)."""
    from PIL import Image

    if tuple(x.shape[1:3]) == tuple(size):
        return x
    out = np.empty((len(x), size[0], size[1], x.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(x):
        im = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        out[i] = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR)).reshape(out.shape[1:])
    return out


def set_channels(x: np.ndarray, color: str) -> np.ndarray:
    """`color` rgb: grayscale images repeated to 3 channels; grayscale: RGB images to luma (ITU-R
    601, Pillow's); auto: as they are."""
    if color == "rgb" and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if color == "grayscale" and x.shape[-1] == 3:
        luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.rint(luma).astype(np.uint8)[..., None]
    return x


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """x_train, y_train, x_test, y_test (and optional class_names) from one .npz."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)} (needs x_train, y_train, x_test, y_test)")
            xs = [np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
            names = [str(n) for n in z["class_names"]] if "class_names" in z.files else []
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
        x = to_uint8(x, f"{path}: x_{split}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y_{split} must be (N,) with one label per image, got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y_{split} must hold integer labels, got {y.dtype}")
        out += [x, y.astype(np.int64)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{path}: train images {out[0].shape[1:]} and test images {out[2].shape[1:]} differ")
    return out[0], out[1], out[2], out[3], names


GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def read_image(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """One image file as uint8 (H, W, 3) and whether it is grayscale. 16-bit images are scaled to
    8 bits (not clipped); palette and alpha images are flattened to RGB; `size` = (height, width)
    resizes (antialiased bilinear)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            gray = im.mode in GRAY_MODES
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                arr = to_uint8(np.asarray(im), str(path))
                im = Image.fromarray(arr if arr.ndim == 2 else arr[..., 0])
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    return rgb, gray


def load_folder(
    root: str | Path, color: str = "auto", size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images in one sub-folder per class; the sorted folder names are the classes.

    Every image must have one size unless `size` resizes them all. `color` auto gives one channel
    when every file is grayscale, else three. The images go into one preallocated uint8 array.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s); need at least 2, one sub-folder per class")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{root / name}: class folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += found
        labels += [label] * len(found)
    x, all_gray = None, True
    for i, f in enumerate(files):
        arr, gray = read_image(f, size)
        if x is None:
            x = np.empty((len(files), *arr.shape), dtype=np.uint8)
        elif arr.shape != x.shape[1:]:
            raise DataError(f"{f}: image is {arr.shape[1]}x{arr.shape[0]}, but {files[0]} is {x.shape[2]}x{x.shape[1]}; "
                            "set data.image_size to resize them all on load")  # fmt: skip
        x[i] = arr
        all_gray &= gray
    if color == "grayscale" or (color == "auto" and all_gray):
        x = set_channels(x, "grayscale") if not all_gray else np.ascontiguousarray(x[..., :1])
    return x, np.asarray(labels, dtype=np.int64), classes


def stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator, min_per_class: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with `fraction` of each class held out: at least one per class, and
    at least `min_per_class` while that leaves four fifths of the class."""
    keep, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = max(1, int(round(len(idx) * fraction)), min(min_per_class, len(idx) // 5)) if len(idx) > 1 else 0
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def stratified_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    _, held = stratified_split(y, n / len(y), rng)
    return held


def is_fashion_mnist(y_train: np.ndarray) -> bool:
    """Whether these are Fashion-MNIST's 60,000 training labels (any other idx data, MNIST's
    digits for one, is not)."""
    import hashlib

    return len(y_train) == 60000 and hashlib.sha256(y_train.astype(np.uint8).tobytes()).hexdigest() == FASHION_MNIST_LABELS_SHA256


def image_size(params: dict) -> tuple[int, int] | None:
    """data.image_size as (height, width): [side] is square; null: keep the files' size."""
    size = params.get("image_size")
    return None if not size else (size[0], size[-1])


def class_names(params: dict, found: list[str], num_classes: int, path: Path) -> list[str]:
    """data.class_names, else the names the source carries (folders, a .npz's class_names), else numbers."""
    given = params.get("class_names")
    names = list(given or found) or [str(i) for i in range(num_classes)]
    if len(names) < num_classes:
        where = "data.class_names" if given else f"{path}: class_names"
        raise DataError(f"{where} has {len(names)} names, but the labels run 0..{num_classes - 1}")
    if given and found and len(given) != len(found):
        raise DataError(f"data.class_names has {len(given)} names, but {path} has {len(found)} classes")
    return names


def prepare(params: dict, seed: int, base_dir: Path = Path(".")) -> Dataset:
    """Load the configured source and make deterministic train/validation/test splits."""
    rng = np.random.default_rng(seed)
    path = Path(params["path"]).expanduser()
    path = path if path.is_absolute() else base_dir / path
    source, size, color = params["source"], image_size(params), params["color"]
    found: list[str] = []
    if source == "folder":
        x, y, found = load_folder(path, color, size)
        tr, te = stratified_split(y, params["test_fraction"], rng)
        x_train, y_train, x_test, y_test = x[tr], y[tr], x[te], y[te]
        del x
    else:
        if source == "idx":
            x_train, y_train, x_test, y_test = load_idx(path)
            found = list(FASHION_MNIST_CLASSES) if is_fashion_mnist(y_train) else []
        else:
            x_train, y_train, x_test, y_test, found = load_npz(path)
        if size is not None:
            x_train, x_test = resize_images(x_train, size), resize_images(x_test, size)
        x_train, x_test = set_channels(x_train, color), set_channels(x_test, color)
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) == 0:
            raise DataError(f"{path}: the {split} split is empty")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = class_names(params, found, num_classes, path)
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
    tr, va = stratified_split(y_train, params["val_fraction"], rng, params.get("min_val_per_class", 0))
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
