"""What every stage shares: params loading, one-line errors, metrics, and the MLflow run.

A stage module parses its paths, then does its work inside `Stage(...)`:

    with Stage("teacher", args.params, sections=["teacher"], inputs={"data": args.data}) as st:
        ...
        st.finish(metrics, metrics_path=args.metrics, artifacts=[model_path])

A `UserError` anywhere inside ends the process with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common import io, tracking
from pipelines.common.errors import UserError
from pipelines.common.params import load_params, params_hash

log = logging.getLogger("edgesmith")


def resolve(params_path: str | Path, relative: str | Path) -> Path:
    """A path from params, taken relative to the params file's folder."""
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (Path(params_path).parent / p)


def resume_dir(root: str | Path, key: Mapping[str, Any], code: Iterable[str | Path] = ()) -> Path:
    """The folder under `root` where a long stage keeps its finished pieces of work (epochs,
    students) until it ends, so that a killed run picks them up again. It is named by a hash of
    `key` (JSON: the params and input hashes that decide the work) and of the `code` files' bytes;
    folders of other keys, left by a killed run with other settings or other code, are removed, so
    only work of the same run is ever resumed."""
    root = Path(root)
    name = params_hash({**key, "code": [io.sha256_file(f) for f in code]})
    if root.is_dir():
        for old in root.iterdir():
            if old.name != name:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    (root / name).mkdir(parents=True, exist_ok=True)
    return root / name


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


class Stage:
    """Context for one stage execution: validated params, inputs' hashes, and tracking."""

    def __init__(
        self,
        name: str,
        params_path: str | Path,
        sections: list[str],
        inputs: Mapping[str, str | Path] | None = None,
    ) -> None:
        self.name = name
        self.params_path = Path(params_path)
        self.sections = sections
        self.inputs = {k: Path(v) for k, v in (inputs or {}).items()}
        self.params: dict[str, dict[str, Any]] = {}
        self.base: dict[str, Any] = {}
        self.started = 0.0
        self._hashes: dict[Path, str] = {}
        self._pipeline_run: dict[str, Any] | None = None

    def __enter__(self) -> Stage:
        setup_logging()
        self.started = time.time()
        try:
            loaded = load_params(self.params_path, sections=["base", *self.sections])
            for key, path in self.inputs.items():
                if not path.exists():
                    raise UserError(f"{path}: input '{key}' not found; run the stage that makes it first")
        except UserError as exc:
            fail(str(exc), exc.exit_code)
        self.base = loaded.pop("base")
        self.params = loaded
        log.info("stage %s: params %s", self.name, self.params_path)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, UserError):
            fail(str(exc), exc.exit_code)
        return False

    @property
    def seed(self) -> int:
        return int(self.base["seed"])

    @property
    def experiment(self) -> str:
        """The MLflow experiment: base.experiment, unless one of the stage's sections names its own."""
        own = [self.params[s]["experiment"] for s in self.sections if "experiment" in self.params.get(s, {})]
        return own[-1] if own else self.base["experiment"]

    def resolve(self, relative: str) -> Path:
        """A path from params, taken relative to the params file's folder."""
        return resolve(self.params_path, relative)

    def tags(self) -> dict[str, str]:
        tags = {
            "edgesmith.stage": self.name,
            "edgesmith.params_file": str(self.params_path),
            "edgesmith.params_hash": params_hash(self.params, {"seed": self.seed}),
            **tracking.source_tags(self.params_path.parent, f"stages/{self.name}.py"),
        }
        if os.environ.get("DVC_EXP_NAME"):
            tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
        for key, path in self.inputs.items():
            tags[f"input.{key}.sha256"] = self._sha256(path)[:16]
        return tags

    def _sha256(self, path: Path) -> str:
        if path not in self._hashes:
            self._hashes[path] = io.sha256_path(path)
        return self._hashes[path]

    def pipeline_run(self) -> dict[str, Any]:
        """The pipeline run every stage run nests under: one per commit, DVC experiment and params
        file content, in this stage's experiment (found by its key, or made by the first stage).
        Worked out once per stage: every run it logs (a search's trials too) nests in the same one."""
        if self._pipeline_run is None:
            source = tracking.source_tags(self.params_path.parent, "dvc.yaml")
            commit, exp = source["mlflow.source.git.commit"], os.environ.get("DVC_EXP_NAME", "")
            key = params_hash({"experiment": self.experiment, "commit": commit, "dvc_exp": exp,
                               "params": io.sha256_file(self.params_path)})  # fmt: skip
            tags = {**source, "edgesmith.pipeline_run": "true", "edgesmith.params_file": str(self.params_path),
                    **({"dvc.exp_name": exp} if exp else {})}  # fmt: skip
            self._pipeline_run = {"key": key, "name": f"{exp or 'pipeline'} @ {commit[:7]}", "tags": tags}
        return self._pipeline_run

    def datasets(self) -> list[dict[str, Any]]:
        """The stage's dataset inputs as MLflow datasets: name, content digest, split."""
        out = []
        for key, path in self.inputs.items():
            if key == "data":
                out += tracking.dataset_inputs(path, dataset_name(self.params_path, path), self._sha256(path))
        return out

    def finish(
        self,
        metrics: Mapping[str, Any],
        metrics_path: str | Path,
        artifacts: Iterable[str | Path] = (),
        extra_tags: Mapping[str, str] | None = None,
        series: Mapping[str, Sequence[float]] | None = None,
        models: Iterable[Mapping[str, Any]] = (),
    ) -> str | None:
        """Write metrics/<stage>.json, then log the stage's run (with per-epoch `series` and the
        `models` it made, see `tracking.record`). Returns the MLflow run id, if logged."""
        metrics = dict(metrics)
        metrics.setdefault("duration_s", round(time.time() - self.started, 2))
        io.write_json(metrics_path, metrics)
        data = {"edgesmith.data_sha256": self._sha256(self.inputs["data"])} if "data" in self.inputs else {}
        models = [{**m, "tags": {**data, **m.get("tags", {})}} for m in models]
        return self.log_run(self.name, metrics, [metrics_path, *artifacts], extra_tags, series=series, models=models,
                            datasets=self.datasets())  # fmt: skip

    def summary(
        self,
        metrics: Mapping[str, Any],
        artifacts: Iterable[str | Path],
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        figures: Mapping[str, Mapping[str, Any]],
        register: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The pipeline's summary, logged on the pipeline run itself: every model's figures side by
        side, also attached to the models; with `register`, the final model is registered."""
        return tracking.log_run(
            run_name="summary",
            experiment=self.experiment,
            mlruns_dir=self.resolve(self.base["mlruns_dir"]),
            params=params,
            metrics=metrics,
            tags={**tags, "edgesmith.summary": "true"},
            artifacts=artifacts,
            start_time_ms=int(self.started * 1000),
            parent=self.pipeline_run(),
            on_parent=True,
            figures=figures,
            register=register,
        )

    def log_run(
        self,
        run_name: str,
        metrics: Mapping[str, Any],
        artifacts: Iterable[str | Path] = (),
        extra_tags: Mapping[str, str] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str | None:
        """One MLflow run with this stage's params and tags, nested in the pipeline run (tracking
        failures only warn); `fields` as `tracking.record` takes them."""
        return tracking.log_run(
            run_name=run_name,
            experiment=self.experiment,
            mlruns_dir=self.resolve(self.base["mlruns_dir"]),
            params={**self.params, "base": {"seed": self.seed}, **(extra_params or {})},
            metrics=metrics,
            tags={**self.tags(), **(extra_tags or {})},
            artifacts=artifacts,
            start_time_ms=int(self.started * 1000),
            parent=self.pipeline_run(),
            **fields,
        )


def dataset_name(params_path: str | Path, path: str | Path) -> str:
    """What the user calls the dataset behind a prepared input: the folder or file `data.path`
    names, or the graph datasets `graph_data` names."""
    import yaml

    raw = yaml.safe_load(Path(params_path).read_text()) or {}
    path = Path(path)
    if "graph" in path.parts or path.name in ("node.npz", "graph.npz"):
        g = raw.get("graph_data") or {}
        names = {"node.npz": [g.get("node_dataset")], "graph.npz": [g.get("graph_dataset")]}.get(
            path.name, [g.get("node_dataset"), g.get("graph_dataset")])
        return "+".join(str(n) for n in names if n) or path.stem
    return Path(str((raw.get("data") or {}).get("path") or path)).expanduser().name or path.stem
