"""`edgesmith doctor`: is this machine ready to run the pipeline? One line per check."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

STACK = (
    "tensorflow", "tf-keras", "keras", "tensorflow-model-optimization", "keras-tuner",
    "ai-edge-litert", "torch", "torch-geometric", "numpy", "mlflow", "dvc",
)  # fmt: skip


def _check(ok: bool, label: str, detail: str, problems: list[str], fix: str = "") -> None:
    print(f"{'ok ' if ok else 'BAD'}  {label:<22} {detail}")
    if not ok:
        problems.append(f"{label}: {detail}{'; ' + fix if fix else ''}")


def _keras_flavour() -> tuple[bool, str]:
    try:
        from pipelines.vision.tfk import keras, tf

        legacy = keras.__name__ == "tf_keras" and os.environ.get("TF_USE_LEGACY_KERAS") == "1"
        return legacy, f"tf-keras {keras.__version__} (Keras 2) under TensorFlow {tf.__version__}" if legacy else (
            f"{keras.__name__} {keras.__version__}: not tf-keras"
        )
    except ImportError as exc:
        return False, f"cannot import TensorFlow / tf-keras ({exc})"


def run(params_path: Path) -> list[str]:
    """Print every check; return the problems found (empty when all is well)."""
    from pipelines.common import tracking
    from pipelines.common.errors import UserError
    from pipelines.common.params import load_params
    from pipelines.edge import host

    problems: list[str] = []
    for dist in STACK:
        try:
            _check(True, dist, metadata.version(dist), problems)
        except metadata.PackageNotFoundError:
            _check(False, dist, "not installed", problems, "run `make setup`")
    try:
        from pipelines.edge.runtime import runtime_name

        _check(True, "tflite runtime", runtime_name(), problems)
    except UserError as exc:
        _check(False, "tflite runtime", str(exc), problems)
    ok, detail = _keras_flavour()
    _check(ok, "keras flavour", detail, problems, "import Keras only through pipelines.vision.tfk")
    print(f"ok   {'cpu':<22} {host.cpu_model()}, {os.cpu_count()} cores")
    try:
        params = load_params(params_path)  # the whole file, every section
    except UserError as exc:
        _check(False, "params", str(exc), problems)
        return problems
    _check(True, "params", str(params_path), problems)
    data_path = Path(params["data"]["path"]).expanduser()
    data_path = data_path if data_path.is_absolute() else params_path.parent / data_path
    if params["data"]["source"] == "idx":
        from pipelines.vision.data import IDX_FILES

        missing = [s for s in IDX_FILES.values() if not any((data_path / (s + e)).is_file() for e in (".gz", ""))]
        present = not missing
        detail = f"{data_path} ({'4 idx files' if present else 'missing ' + ', '.join(missing)})"
    else:
        present = data_path.exists()
        detail = f"{data_path} ({'found' if present else 'not found'})"
    _check(present, "dataset", detail, problems, "apt-get install dataset-fashion-mnist, or set data.path")
    mlruns = params["base"]["mlruns_dir"]
    uri, err = tracking.ping(params_path.parent / mlruns)
    _check(err is None, "tracking", f"{uri} ({'answers' if err is None else err})", problems,
           "start the server or unset MLFLOW_TRACKING_URI")  # fmt: skip
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
    return problems
