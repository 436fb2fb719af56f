"""The real vision stages on a user's own data that is not Fashion-MNIST (slow).

Two generated datasets, each through `dvc repro` of the vision chain up to the report, in a
temporary copy of the project with a profile of the quick settings whose `data.*` point at it:

- a folder of RGB 36x36 PNGs in 2 classes (a size that is not 28, three channels, two classes);
- an `.npz` of float grayscale 20x20 images in [0, 1] with 5 named classes.

For each: the teacher is well above chance, every .tflite file takes the images' shape, the labels
beside the files are the data's class names, the chain's choice of student is recorded, and
`edgesmith predict` names a class of the data for an image file.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from pipelines.common import io
from pipelines.common.params import profile_params
from pipelines.edge import runtime
from pipelines.vision import synthetic
from tests.test_pipeline import _copy_project, _dvc, project_env

pytestmark = pytest.mark.slow

# The quick profile's light settings, smaller still: what a first try on a laptop would use.
LIGHT = {
    "teacher": {"epochs": 2, "min_steps": 300},
    "search": {"max_trials": 3, "population": 2, "tournament": 1, "train_samples": 0, "min_steps": 60},
    "distill": {"seeds": 1, "epochs": 2, "min_steps": 150},
    "prune": {"epochs": 1, "min_steps": 60},
    "quantize": {"representative_samples": 100, "selective_max_layers": 2, "qat_min_steps": 20},
    "budget": {"min_accuracy": 0.5, "max_latency_p50_ms": 50.0},
    "benchmark": {"warmup_runs": 2, "min_runs": 20, "min_seconds": 0.2},
}


def _profile(project, name: str, data: dict):
    folder = project / "profiles" / name
    folder.mkdir(parents=True)
    overrides = {"base": {"code_root": "../..", "mlruns_dir": "../../mlruns", "experiment": f"user-{name}"},
                 "data": data, **LIGHT}  # fmt: skip
    (folder / "overrides.yaml").write_text(yaml.safe_dump(overrides, sort_keys=False))
    (folder / "params.yaml").write_text(profile_params(folder, project / "params.yaml"))
    (folder / "dvc.yaml").write_text((project / "dvc.yaml").read_text())
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("user_data")
    project = _copy_project(tmp / "project")
    rgb = synthetic.write(tmp / "rgb36", "folder", 300, 2, 36, seed=1)
    x, y = synthetic.make_images(500, 5, 20, seed=2)
    gray = (x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0  # floats in [0, 1]
    names = [f"kind {c}" for c in range(5)]
    np.savez(tmp / "gray20.npz", x_train=gray[:400], y_train=y[:400], x_test=gray[400:], y_test=y[400:],
             class_names=np.array(names))  # fmt: skip
    cases = {
        "rgb36": (_profile(project, "rgb36", {"source": "folder", "path": str(rgb), "class_names": None}),
                  (36, 36, 3), sorted(synthetic.class_names(2))),  # fmt: skip
        "gray20": (_profile(project, "gray20", {"source": "npz", "path": str(tmp / "gray20.npz"), "class_names": None}),
                   (20, 20, 1), names),  # fmt: skip
    }
    out = {}
    for name, (folder, shape, classes) in cases.items():
        proc = _dvc(project, "repro", f"profiles/{name}/dvc.yaml:report", timeout=2400)
        out[name] = {"folder": folder, "shape": shape, "classes": classes, "proc": proc, "project": project}
    return out


@pytest.mark.parametrize("name", ["rgb36", "gray20"])
def test_the_chain_runs_on_the_users_data(runs, name):
    r = runs[name]
    assert r["proc"].returncode == 0, (r["proc"].stdout + r["proc"].stderr)[-6000:]
    folder = r["folder"]
    data = io.read_json(folder / "metrics" / "data.json")
    assert data["image_shape"] == list(r["shape"]) and data["class_names"] == r["classes"]
    teacher = io.read_json(folder / "metrics" / "teacher.json")
    assert teacher["val_accuracy"] >= teacher["chance_accuracy"] + 0.2, teacher
    assert teacher["steps"] >= 300
    distill = io.read_json(folder / "metrics" / "distill.json")
    chain = io.read_json(folder / "models" / "students" / "chain.json")
    assert chain == distill["chain"] and chain["student"] in ("kd", "baseline")
    assert io.read_json(folder / "metrics" / "prune.json")["student"] == chain["student"]
    tflite = sorted((folder / "models" / "tflite").glob("*.tflite"))
    assert len(tflite) >= 8
    for f in tflite:
        inp = runtime.load(f).get_input_details()[0]
        assert tuple(inp["shape"][1:]) == r["shape"], f.name
    labels = (folder / "models" / "tflite" / "labels.txt").read_text().splitlines()
    assert labels == r["classes"]
    search = io.read_json(folder / "metrics" / "search.json")
    assert search["auto_limits"]["max_latency_ms"]["value"] > 0 and search["screened"] > 0  # the target core's own limit
    assert "Traceback" not in r["proc"].stdout + r["proc"].stderr
    assert "oneDNN custom operations" not in r["proc"].stdout + r["proc"].stderr
    report = io.read_json(folder / "metrics" / "report.json")
    assert report["final"] in {m["name"] for m in report["models"]}


def test_predict_names_a_class_of_the_users_data(runs, tmp_path):
    r = runs["rgb36"]
    x, _ = synthetic.make_images(3, 2, 50, seed=9)  # another size: predict resizes to the model's input
    files = []
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    model = r["folder"] / "models" / "tflite" / "student_kd_int8.tflite"
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "predict", str(model), *files, "--top", "2", "--json"],
                          capture_output=True, text=True, env=project_env(r["project"]), cwd=r["project"], timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load(proc.stdout)
    assert [len(p["top"]) for p in results] == [2, 2, 2]
    assert all(t["name"] in r["classes"] for p in results for t in p["top"])
