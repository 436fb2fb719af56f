"""A stage's prepared dataset as MLflow dataset inputs: one per split, each with its own digest.

A vision dataset (`data/dataset.npz`: x_train, y_train, x_val, ...) gives three datasets of one
name, `train`, `validation` and `test`, each digest a hash of that split's arrays, with its size
and shape as the profile; any other input (the graph data) is one dataset whose digest is the
file's (or folder's) content hash.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

SPLITS = (("train", "x_train", "y_train"), ("validation", "x_val", "y_val"), ("test", "x_test", "y_test"))


def dataset_inputs(path: str | Path, name: str, content_sha256: str) -> list[dict[str, Any]]:
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as arrays:
                if all(x in arrays and y in arrays for _, x, y in SPLITS):
                    return [_split(name, path, context, arrays[x], arrays[y]) for context, x, y in SPLITS]
        except (OSError, ValueError, zipfile.BadZipFile):
            pass
    return [{"name": name, "digest": content_sha256[:32], "source": str(path.resolve()), "context": "train"}]


def _split(name: str, path: Path, context: str, x, y) -> dict[str, Any]:
    h = hashlib.sha256()
    for a in (x, y):
        h.update(str(a.shape).encode() + str(a.dtype).encode())
        h.update(a.tobytes())
    profile = {"num_rows": int(len(x)), "shape": list(x.shape[1:]), "classes": int(len(set(y.tolist())))}
    return {"name": name, "digest": h.hexdigest()[:32], "source": f"{path.resolve()}#{context}", "context": context,
            "profile": json.dumps(profile)}  # fmt: skip
