"""`edgesmith compare A B`: every model of two pipeline runs side by side, with deltas.

A and B are each a report file, an MLflow run id (of a `summary` run), a DVC experiment name
(the `dvc.exp_name` tag every run of `dvc exp run` carries) or a git commit (any revision git
understands, or a hash prefix): the newest summary run that matches is used.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.common import tracking
from pipelines.common.errors import UserError
from pipelines.common.render import format_figure
from pipelines.common.report import read_report

FIGURES = ("accuracy", "size_bytes", "latency_p50_ms", "memory_access_bytes")


@dataclass
class Side:
    """One pipeline run as compare sees it: where it came from, its final model, each model's figures."""

    label: str
    final: str | None
    models: dict[str, dict[str, float | None]] = field(default_factory=dict)


def from_report(doc: dict[str, Any], label: str) -> Side:
    return Side(label, doc.get("final"), {m["name"]: {f: m.get(f) for f in FIGURES} for m in doc["models"]})


def from_summary_run(run: dict[str, Any], ref: str, how: str) -> Side:
    """A summary run's metrics are `<model>.<figure>`; models are those with an accuracy."""
    metrics = run["metrics"]
    names = [k.rsplit(".", 1)[0] for k in metrics if k.endswith(".accuracy")]
    models = {n: {f: metrics.get(f"{n}.{f}") for f in FIGURES} for n in sorted(names)}
    tags = run["tags"]
    when = datetime.fromtimestamp(run["start_time"] / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if run.get("start_time") else "?"
    details = [f"summary run {run['run_id'][:12]}", f"commit {tags.get('mlflow.source.git.commit', '?')[:10]}", when]
    if tags.get("dvc.exp_name") and how != "experiment":
        details.insert(0, f"experiment {tags['dvc.exp_name']}")
    return Side(f"{ref} ({how}: {', '.join(details)})", tags.get("edgesmith.final") or run["params"].get("final"), models)


def _rev_parse(ref: str, cwd: str | Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=cwd,
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def resolve(ref: str, mlruns_dir: str | Path, pipeline: str = "vision", cwd: str | Path = ".") -> Side:
    """Find what `ref` names (see the module's docstring); one clear error when nothing matches."""
    if Path(ref).is_file():
        return from_report(read_report(ref), f"{ref} (report file)")
    if re.fullmatch(r"[0-9a-f]{32}", ref):
        run = tracking.get_run(ref, mlruns_dir)
        if run is not None:
            if run["tags"].get("edgesmith.summary") != "true":
                raise UserError(f"{ref}: MLflow run '{run['name']}' is not a summary run; pass the id of a run "
                                "named 'summary' (the report stage's)")  # fmt: skip
            return from_summary_run(run, ref, "MLflow run")
    runs = [r for r in tracking.summary_runs(mlruns_dir) if r["tags"].get("edgesmith.pipeline", "vision") == pipeline]
    for r in runs:
        if r["tags"].get("dvc.exp_name") == ref:
            return from_summary_run(r, ref, "experiment")
    commit = _rev_parse(ref, cwd) or (ref if re.fullmatch(r"[0-9a-f]{4,40}", ref) else None)
    if commit:
        matches = [r for r in runs if r["tags"].get("mlflow.source.git.commit", "").startswith(commit)]
        matches.sort(key=lambda r: "dvc.exp_name" in r["tags"])  # a plain run of the commit before its experiments
        if matches:
            return from_summary_run(matches[0], ref, "commit")
    uri = tracking.store_uris(mlruns_dir)[0]
    raise UserError(f"{ref}: not a report file, nor an MLflow run id, DVC experiment name or git commit with a "
                    f"{pipeline} summary run in {uri}")  # fmt: skip


def _delta(fig: str, a: float | None, b: float | None) -> tuple[str, str]:
    if a is None or b is None:
        return "-", "-"
    d = b - a
    text = f"{d * 100:+.2f} pt" if fig == "accuracy" else (f"{d:+.4f}" if fig.endswith("_ms") else f"{d:+,.0f}")
    return text, (f"{d / a:+.1%}" if a else "-")


def table(a: Side, b: Side) -> str:
    """One line per model and figure: A, B, B - A and the relative change; models of only one side show '-'."""
    names = list(dict.fromkeys([*a.models, *b.models]))
    cells = [["model", "figure", "A", "B", "B - A", "change"]]
    for n in names:
        mark = "".join(s for s, side in (("A", a), ("B", b)) if side.final == n)
        for i, fig in enumerate(FIGURES):
            va, vb = a.models.get(n, {}).get(fig), b.models.get(n, {}).get(fig)
            label = (f"{n} (final {mark})" if mark else n) if i == 0 else ""
            cells.append([label, fig, format_figure(fig, va, "{:.4f}"), format_figure(fig, vb, "{:.4f}"), *_delta(fig, va, vb)])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = [f"A: {a.label}", f"B: {b.label}", ""]
    for j, r in enumerate(cells):
        lines.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"final model: A {a.final or '-'}, B {b.final or '-'}")
    return "\n".join(lines)
