"""Dataset loading: the idx reader, .npz and image folders, splits, and bad-data errors.

Bad data covered: truncated and corrupt idx files, a wrong magic number, mixed image sizes, labels
out of range, empty splits; each is one clear error.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.common.errors import DataError
from pipelines.vision import data
from tests.conftest import data_params, make_images, write_idx


def test_idx_round_trip_gz_and_raw(tmp_path):
    x, _ = make_images(7, size=5)
    assert np.array_equal(data.read_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", x)), x)
    assert np.array_equal(data.read_idx(write_idx(tmp_path / "a-idx3-ubyte", x, gz=False)), x)


def test_idx_wrong_magic(tmp_path):
    p = tmp_path / "bad.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 8))
    with pytest.raises(DataError, match=r"bad.gz: not an idx file \(bad magic number 12340801\)"):
        data.read_idx(p)


def test_idx_truncated(tmp_path):
    x, _ = make_images(4, size=6)
    raw = tmp_path / "t-idx3-ubyte"
    write_idx(raw, x, gz=False)
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"truncated or padded idx data: header says \[4, 6, 6\]"):
        data.read_idx(raw)


def test_idx_corrupt_gzip(tmp_path):
    x, _ = make_images(4, size=6)
    p = write_idx(tmp_path / "c.gz", x)
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(DataError, match=r"c.gz: corrupt gzip data"):
        data.read_idx(p)


def test_idx_folder_with_missing_file_and_label_mismatch(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: file not found"):
        data.load_idx(idx_dir)
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(59, np.uint8))
    with pytest.raises(DataError, match=r"59 labels for 60 images"):
        data.load_idx(idx_dir)


def test_prepare_is_deterministic_stratified_and_subsets(idx_dir):
    a = data.prepare(data_params("idx", idx_dir), seed=3)
    b = data.prepare(data_params("idx", idx_dir), seed=3)
    c = data.prepare(data_params("idx", idx_dir), seed=4)
    assert all(np.array_equal(a.arrays()[k], b.arrays()[k]) for k in a.arrays())
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)
    assert len(a.x_train) + len(a.x_val) == 200 and len(a.x_test) == 60
    assert np.bincount(a.y_val, minlength=10).tolist() == [2] * 10  # 10 % of 20 per class
    assert a.x_train.shape[1:] == (28, 28, 1) and a.x_train.dtype == np.uint8
    small = data.prepare(data_params("idx", idx_dir, max_train=50, max_test=20), seed=3)
    assert len(small.x_train) == 50 and len(small.x_test) == 20
    assert np.bincount(small.y_train, minlength=10).min() >= 4
    info = data.summary(a)
    assert info["train_count"] == len(a.y_train) and sum(info["train_per_class"].values()) == info["train_count"]
    assert info["content_sha256"] == data.summary(b)["content_sha256"] != data.summary(c)["content_sha256"]


def test_prepared_dataset_saves_and_loads(tmp_path, idx_dir):
    ds = data.prepare(data_params("idx", idx_dir), seed=0)
    ds.save(tmp_path / "d.npz")
    back = data.Dataset.load(tmp_path / "d.npz")
    assert back.class_names == ds.class_names
    assert all(np.array_equal(back.arrays()[k], v) for k, v in ds.arrays().items())


def test_npz_source(tmp_path):
    x, y = make_images(40, classes=4, size=12)
    xt, yt = make_images(12, classes=4, size=12, seed=5)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    ds = data.prepare(data_params("npz", tmp_path / "d.npz"), seed=0)
    assert ds.class_names == ["0", "1", "2", "3"] and ds.x_test.shape == (12, 12, 12, 1)
    np.savez(tmp_path / "e.npz", x_train=x, y_train=y, x_test=xt)
    with pytest.raises(DataError, match=r"e.npz: missing arrays y_test"):
        data.prepare(data_params("npz", tmp_path / "e.npz"), seed=0)
    np.savez(tmp_path / "f.npz", x_train=x, y_train=y.astype(np.int64) - 1, x_test=xt, y_test=yt)
    with pytest.raises(DataError, match=r"f.npz: train labels must be in 0..\d+, found -1"):
        data.prepare(data_params("npz", tmp_path / "f.npz"), seed=0)
    np.savez(tmp_path / "g.npz", x_train=x, y_train=y, x_test=xt[:0], y_test=yt[:0])
    with pytest.raises(DataError, match=r"g.npz: the test split is empty"):
        data.prepare(data_params("npz", tmp_path / "g.npz"), seed=0)


def _folder(root, classes=("cat", "dog"), n=5, size=(10, 8)):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((size[1], size[0]), i * 20, np.uint8)).save(root / c / f"{i}.png")
    return root


def test_folder_source(tmp_path):
    root = _folder(tmp_path / "imgs")
    ds = data.prepare(data_params("folder", root, test_fraction=0.2), seed=0)
    assert ds.class_names == ["cat", "dog"]
    assert ds.x_train.shape[1:] == (8, 10, 1)
    assert len(ds.y_test) == 2 and sorted(ds.y_test.tolist()) == [0, 1]
    rgb = data.prepare(data_params("folder", root, color="rgb"), seed=0)
    assert rgb.x_train.shape[-1] == 3


def test_folder_with_one_class(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("only",))
    with pytest.raises(DataError, match=r"imgs: found 1 class folder\(s\); need at least 2"):
        data.prepare(data_params("folder", root), seed=0)


def test_folder_with_mixed_sizes_names_the_file(tmp_path):
    root = _folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "dog" / "odd.png")
    with pytest.raises(DataError, match=r"dog/odd.png: image is 9x9, but .*cat/0.png is 10x8"):
        data.prepare(data_params("folder", root), seed=0)


def test_folder_with_unreadable_image(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cat/broken.png: not a readable image"):
        data.prepare(data_params("folder", root), seed=0)


def test_missing_source_path(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: idx folder not found"):
        data.prepare(data_params("idx", tmp_path / "nowhere"), seed=0)


def test_idx_labels_out_of_range(idx_dir):
    y = np.arange(200, dtype=np.uint8) % 10
    y[7] = 200  # a stray label far past the ten classes
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", y)
    with pytest.raises(DataError, match=r"idx: labels run up to 200, but 10, 11, 12, 13, 14 and 185 more never occur in "
                                        r"the training split; labels must be 0..N-1"):  # fmt: skip
        data.prepare(data_params("idx", idx_dir), seed=0)
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", np.arange(200, dtype=np.uint8) % 10)
    yt = np.arange(60, dtype=np.uint8) % 10
    yt[3] = 12  # a test label no training image has
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", yt)
    with pytest.raises(DataError, match=r"labels run up to 12, but 10, 11, 12 never occur in the training split"):
        data.prepare(data_params("idx", idx_dir), seed=0)


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_idx_empty_split(idx_dir, split):
    write_idx(idx_dir / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(idx_dir / f"{split}-labels-idx1-ubyte.gz", np.zeros((0,), np.uint8))
    name = "train" if split == "train" else "test"
    with pytest.raises(DataError, match=rf"idx: the {name} split is empty"):
        data.prepare(data_params("idx", idx_dir), seed=0)


def test_idx_wrong_magic_through_prepare_names_the_file(idx_dir):
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x10" + b"\x00" * 16))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: expected images \(N, H, W\), got shape \[16\]"):
        data.prepare(data_params("idx", idx_dir), seed=0)
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"PK\x03\x04" + b"\x00" * 32))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: not an idx file \(bad magic number 504b0304\)"):
        data.prepare(data_params("idx", idx_dir), seed=0)


def test_npz_images_of_mixed_size(tmp_path):
    x, y = make_images(20, classes=4, size=12)
    xt, yt = make_images(8, classes=4, size=10)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    with pytest.raises(DataError, match=r"m.npz: train images \(12, 12, 1\) and test images \(10, 10, 1\) differ"):
        data.prepare(data_params("npz", tmp_path / "m.npz"), seed=0)


def test_bad_data_through_the_stage_exits_2_with_one_line(tmp_path, idx_dir):
    import subprocess
    import sys

    import yaml

    from tests.conftest import QUICK, ROOT, run_env

    raw = yaml.safe_load((QUICK / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = "mlruns"
    raw["data"].update(path=str(idx_dir), max_train=0, max_test=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    raw_labels = tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz"
    raw_labels.write_bytes(raw_labels.read_bytes()[:-5])  # a truncated download
    proc = subprocess.run([sys.executable, "-m", "stages.data", "--params", str(tmp_path / "params.yaml"), "--out",
                           str(tmp_path / "out" / "d.npz"), "--metrics", str(tmp_path / "metrics" / "data.json")],
                          capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("20")]  # log lines start with the date
    assert errors == [f"error: {raw_labels}: corrupt gzip data (Compressed file ended before the end-of-stream "
                      "marker was reached)"]  # fmt: skip
    assert not (tmp_path / "out").exists() and not (tmp_path / "metrics").exists()


# ---- any user's data: pixel types, colour, sizes, class names, validation size ----


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_npz_float_images_are_scaled_not_blackened(tmp_path, scale):
    x, y = make_images(40, classes=4, size=12)
    xt, yt = make_images(12, classes=4, size=12, seed=5)
    np.savez(tmp_path / "f.npz", x_train=x.astype(np.float32) / 255.0 * scale, y_train=y,
             x_test=xt.astype(np.float64) / 255.0 * scale, y_test=yt)  # fmt: skip
    ds = data.prepare(data_params("npz", tmp_path / "f.npz"), seed=0)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 220
    both = np.concatenate([ds.x_train, ds.x_val]).astype(int)
    assert abs(both.sum() - x.astype(int).sum()) <= len(both) * 12 * 12 // 2  # rounding only


def test_npz_with_16_bit_images_and_bad_values(tmp_path):
    x, y = make_images(40, classes=4, size=12)
    np.savez(tmp_path / "w.npz", x_train=x.astype(np.uint16) * 257, y_train=y, x_test=x.astype(np.uint16) * 257, y_test=y)
    assert data.prepare(data_params("npz", tmp_path / "w.npz"), seed=0).x_test.max() == 220
    np.savez(tmp_path / "b.npz", x_train=x.astype(np.float32) - 100, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match=r"b.npz: x_train: pixel values run -100..120; expected uint8, floats in \[0, 1\]"):
        data.prepare(data_params("npz", tmp_path / "b.npz"), seed=0)


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    root = _folder(tmp_path / "imgs")
    ramp = (np.arange(80, dtype=np.uint32).reshape(8, 10) * 800).astype(np.uint16)  # 0 .. 63,200
    Image.fromarray(ramp).save(root / "cat" / "deep.png")
    arr, gray = data.read_image(root / "cat" / "deep.png")
    assert gray and arr.shape == (8, 10, 3)
    assert arr[..., 0].max() == round(63200 * 255 / 65535) and (arr == 255).mean() < 0.01
    assert np.all(np.diff(arr[..., 0].ravel().astype(int)) >= 0)  # the ramp stays a ramp


def test_color_auto_follows_the_files(tmp_path):
    root = _folder(tmp_path / "imgs")
    assert data.prepare(data_params("folder", root), seed=0).x_train.shape[-1] == 1
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(root / "dog" / "red.png")
    ds = data.prepare(data_params("folder", root), seed=0)
    assert ds.x_train.shape[-1] == 3
    gray = data.prepare(data_params("folder", root, color="grayscale"), seed=0)
    assert gray.x_train.shape[-1] == 1


def test_mixed_sizes_resize_with_image_size(tmp_path):
    root = _folder(tmp_path / "imgs")
    Image.fromarray(np.full((30, 20), 100, np.uint8)).save(root / "dog" / "big.png")
    ds = data.prepare(data_params("folder", root, image_size=[16, 12]), seed=0)
    assert ds.x_train.shape[1:] == (16, 12, 1)
    idx = data.prepare(data_params("npz", _npz(tmp_path), image_size=[20], color="rgb"), seed=0)
    assert idx.x_train.shape[1:] == (20, 20, 3) and idx.x_test.shape[1:] == (20, 20, 3)


def _npz(tmp_path, **extra):
    x, y = make_images(40, classes=4, size=12)
    np.savez(tmp_path / "c.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12], **extra)
    return tmp_path / "c.npz"


def test_class_names_come_from_the_data_or_params_never_another_dataset(tmp_path, idx_dir):
    assert data.prepare(data_params("idx", idx_dir), seed=0).class_names == [str(i) for i in range(10)]
    names = [f"digit {i}" for i in range(10)]
    assert data.prepare(data_params("idx", idx_dir, class_names=names), seed=0).class_names == names
    with pytest.raises(DataError, match=r"data.class_names has 3 names, but the labels run 0..9"):
        data.prepare(data_params("idx", idx_dir, class_names=["a", "b", "c"]), seed=0)
    npz = _npz(tmp_path, class_names=np.array(["ant", "bee", "cat", "dog"]))
    assert data.prepare(data_params("npz", npz), seed=0).class_names == ["ant", "bee", "cat", "dog"]
    root = _folder(tmp_path / "imgs")
    with pytest.raises(DataError, match=r"data.class_names has 3 names, but .*imgs has 2 classes"):
        data.prepare(data_params("folder", root, class_names=["a", "b", "c"]), seed=0)


def test_validation_split_is_big_enough_to_decide(idx_dir):
    small = data.prepare(data_params("idx", idx_dir, val_fraction=0.01), seed=0)
    assert np.bincount(small.y_val).tolist() == [1] * 10  # 20 images a class: 1 %
    sized = data.prepare(data_params("idx", idx_dir, val_fraction=0.01, min_val_per_class=20), seed=0)
    assert np.bincount(sized.y_val).tolist() == [4] * 10  # capped at a fifth of each class
    assert len(sized.y_train) + len(sized.y_val) == 200


FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FMNIST / "train-labels-idx1-ubyte.gz").is_file(), reason="Fashion-MNIST not installed")
def test_fashion_mnist_is_recognised_by_content_and_other_idx_data_is_not(idx_dir):
    fm = data.prepare(data_params("idx", FMNIST, max_train=100, max_test=50), seed=0)
    assert fm.class_names[0] == "t-shirt/top" and fm.class_names[9] == "ankle boot"
    y = data.read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    assert data.is_fashion_mnist(y) and not data.is_fashion_mnist((y + 1) % 10)  # same size, other labels: MNIST-like
