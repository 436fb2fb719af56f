"""Models as MLflow models: logged with their run, figures attached, the final one registered.

- a Keras file (`kind: keras`) is saved with MLflow's TensorFlow flavour;
- a `.tflite` file (`kind: tflite`) is saved as a `pyfunc` model *from code*
  (`tflite_pyfunc.py`) that runs the file in the TFLite runtime, with the project's runtime loader
  beside it (`code/pipelines/`): `mlflow.pyfunc.load_model("models:/<id>").predict(x)` then needs
  only MLflow, NumPy and the runtime, never TensorFlow. A pyfunc rather than an external model:
  an external model holds no files, so nothing could be downloaded, served or run from it.

Each is an MLflow 3 logged model (the experiment's Models tab), an output of the run that made it,
signed (input and output tensor specs) with an input example from the dataset. `attach` logs the
report's figures to each model; `register` makes the final model a version of a registered model
and points an alias (`candidate`) at it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.common.tracking.runs import batches
from pipelines.common.tracking.store import default_store

log = logging.getLogger("pipelines.common.tracking")

MODEL_NAME_TAG = "edgesmith.model"
LINK_TAGS = ("mlflow.source.git", "edgesmith.data", "edgesmith.pipeline_key", "dvc.")  # a version's way back
# What a .tflite pyfunc model carries of the project: the runtime loader and what it imports.
RUNTIME_CODE = ("__init__.py", "common/__init__.py", "common/errors.py", "common/quiet.py", "edge/__init__.py",
                "edge/runtime.py", "edge/evaluate.py")  # fmt: skip
PROJECT = Path(__file__).resolve().parents[2]  # the `pipelines` package


def _pins(*dists: str) -> list[str]:
    out = []
    for d in dists:
        try:
            out.append(f"{d}=={metadata.version(d)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _example(model: Mapping[str, Any]):
    import numpy as np

    if isinstance(model["example"], Mapping):  # a model with named inputs (the graph classifier)
        return {k: np.asarray(v, dtype=np.float32) for k, v in model["example"].items()}
    return np.asarray(model["example"], dtype=np.float32)


def save(model: Mapping[str, Any], path: Path) -> None:
    """The MLflow model directory of one model file (MLflow's per-model INFO lines held back)."""
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        _save(model, path)
    finally:
        quiet.setLevel(level)


def _save(model: Mapping[str, Any], path: Path) -> None:
    from mlflow.models import infer_signature

    example = _example(model)
    if model["kind"] == "keras":
        import mlflow.tensorflow

        from pipelines.vision.tfk import load_model

        keras_model = load_model(model["path"])
        signature = infer_signature(example, keras_model.predict(example, verbose=0))
        mlflow.tensorflow.save_model(keras_model, str(path), signature=signature, input_example=example,
                                     pip_requirements=_pins("tensorflow", "tf-keras", "numpy"))  # fmt: skip
        return
    import mlflow.pyfunc

    from pipelines.edge import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "pipelines"
        for rel in RUNTIME_CODE:
            (code / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / rel, code / rel)
        signature = infer_signature(example, evaluate.predict(model["path"], example, threads=1))
        mlflow.pyfunc.save_model(str(path), python_model=str(Path(__file__).with_name("tflite_pyfunc.py")),
                                 artifacts={"tflite": model["path"]}, code_paths=[str(code)], signature=signature,
                                 input_example=example, pip_requirements=_pins("mlflow", "numpy", "ai-edge-litert"))  # fmt: skip


def _figures(figures: Mapping[str, Any], model, run_id: str) -> list:
    """A model's numeric figures as MLflow metrics attached to its logged model."""
    from mlflow.entities import Metric

    return [Metric(k, float(v), model.creation_timestamp, 0, model_id=model.model_id, run_id=run_id)
            for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]  # fmt: skip


def log_model(mlflow_client, exp_id: str, run_id: str, model: Mapping[str, Any], run_tags: Mapping[str, str]) -> str:
    """Log one model as an MLflow logged model, output of `run_id`; returns its model id."""
    from mlflow.entities import LoggedModelOutput

    keep = ("mlflow.source.git.commit", "edgesmith.pipeline_key", "edgesmith.stage", "dvc.exp_name")
    tags = {**{k: v for k, v in run_tags.items() if k in keep}, MODEL_NAME_TAG: model["name"],
            "edgesmith.kind": model["kind"], **model.get("tags", {})}  # fmt: skip
    logged = mlflow_client.create_logged_model(exp_id, name=model["name"], source_run_id=run_id, tags=tags,
                                               params={k: str(v) for k, v in model.get("params", {}).items()},
                                               model_type=model["kind"])  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp:
            save(model, Path(tmp) / "model")
            mlflow_client.log_model_artifacts(logged.model_id, str(Path(tmp) / "model"))
    except Exception:
        mlflow_client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    mlflow_client.finalize_logged_model(logged.model_id, "READY")
    mlflow_client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, 0)])
    figures = _figures(model.get("metrics", {}), logged, run_id)
    if figures:
        mlflow_client.log_batch(run_id, metrics=figures)
    return logged.model_id


def find(mlflow_client, exp_id: str, pipeline_key: str) -> dict[str, Any]:
    """The newest ready logged model of each name made in one pipeline run, by name."""
    found: dict[str, Any] = {}
    page = None
    while True:
        models = mlflow_client.search_logged_models(
            [exp_id], filter_string=f"tags.`edgesmith.pipeline_key` = '{pipeline_key}'", page_token=page,
            order_by=[{"field_name": "creation_time", "ascending": False}])  # fmt: skip
        for m in models:
            if str(m.status) in ("READY", "LoggedModelStatus.READY"):
                found.setdefault(m.tags.get(MODEL_NAME_TAG, m.name), m)
        page = models.token
        if not page:
            return found


def attach(mlflow_client, run_id: str, logged: Mapping[str, Any], figures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Log each model's figures (accuracy, size, latency, memory access, ...) to its logged model."""
    done = [name for name in figures if name in logged]
    values = [m for name in done for m in _figures(figures[name], logged[name], run_id)]
    for batch in batches(values, 1000):
        mlflow_client.log_batch(run_id, metrics=batch)
    return done


def register(mlflow_client, name: str, model, alias: str | None, tags: Mapping[str, str], description: str) -> str:
    """`model` (a logged model) as a version of the registered model `name` (made if new); with
    `alias`, the alias moves to it. The same logged model is never registered twice."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name, description="edgesmith's final model for the target device")
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    source = f"models:/{model.model_id}"  # the version's link to its logged model
    existing = [v for v in mlflow_client.search_model_versions(f"name = '{name}'") if v.source == source]
    if existing:
        version = existing[0]
    else:  # MLflow's SQL registry resolves a models:/ source with the process's default store
        with default_store(mlflow_client.tracking_uri):
            links = {k: v for k, v in model.tags.items() if k.startswith(LINK_TAGS)}  # commit, data, pipeline run
            version = mlflow_client.create_model_version(name, source=source, run_id=model.source_run_id,
                                                         tags={**links, **tags, MODEL_NAME_TAG: model.name},
                                                         description=description, model_id=model.model_id)  # fmt: skip
        # as mlflow.register_model does: the logged model lists its versions (the Models tab shows them)
        versions = json.loads(model.tags.get("mlflow.modelVersions", "[]")) + [{"name": name, "version": version.version}]
        mlflow_client.set_logged_model_tags(model.model_id, {"mlflow.modelVersions": json.dumps(versions)})
    if alias:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def promote(mlflow_client, name: str, to_alias: str, from_alias: str | None = None, version: str | None = None) -> Any:
    """Point `to_alias` at `version`, or at the version `from_alias` points at; returns that version."""
    chosen = mlflow_client.get_model_version(name, version) if version else mlflow_client.get_model_version_by_alias(name, from_alias)
    mlflow_client.set_registered_model_alias(name, to_alias, chosen.version)
    return chosen
