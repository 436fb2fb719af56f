"""dvc.yaml as DVC reads it: every stage lists the code that decides its results as deps (checked
against the modules the stage really imports), and every plot is declared once."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.conftest import ROOT

# The stage harness: it reads params, writes files atomically and logs to MLflow, but decides no
# figure of any output, so editing it re-runs nothing.
HARNESS = {
    "pipelines/__init__.py", "pipelines/common/__init__.py", "pipelines/common/stage.py", "pipelines/common/io.py",
    "pipelines/common/params.py", "pipelines/common/errors.py", "pipelines/common/tracking",
    "pipelines/common/workers.py", "pipelines/common/quiet.py",
}  # fmt: skip


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[Path]:
    """The project's modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in ("pipelines", "stages") and (f := _module_file(name)):
                found.add(f)
    return found


def _harness(f: Path) -> bool:
    rel = str(f.relative_to(ROOT))
    docstring_only = f.name == "__init__.py" and not _imports(f)
    return docstring_only or any(rel == h or rel.startswith(h + "/") for h in HARNESS)


def _closure(start: Path) -> set[str]:
    """The stage's module and what it imports, transitively, leaving out the harness (and what only
    the harness imports)."""
    todo, seen = [start], set()
    while todo:
        f = todo.pop()
        if f in seen or _harness(f):
            continue
        seen.add(f)
        todo.extend(_imports(f))
        if f.name != "__init__.py" and (f.parent / "__init__.py").is_file():
            todo.append(f.parent / "__init__.py")
    return {str(f.relative_to(ROOT)) for f in seen}


def _covered(path: str, listed: set[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in listed)


def test_every_stage_lists_the_code_it_imports_as_deps():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        deps = {d.replace("${base.code_root}/", "") for d in stage["deps"]}
        code = _closure(ROOT / "stages" / f"{name}.py")
        lacking = sorted(f for f in code if not _covered(f, deps))
        if lacking:
            missing[name] = lacking
    assert not missing, f"deps missing from dvc.yaml: {missing}"


def test_deps_name_only_files_that_exist():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.startswith("${base.code_root}/"):
                assert (ROOT / dep.removeprefix("${base.code_root}/")).exists(), f"{name}: {dep}"


def test_each_plot_is_declared_once_and_tables_are_not_charts():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert all("plots" not in stage for stage in doc["stages"].values()), "stage-level plots render twice"
    files = []
    for plot in doc["plots"]:
        if isinstance(plot, str):
            files.append(plot)
            continue
        (title, spec), = plot.items()
        assert spec.get("template") in ("linear", "scatter", "bar_horizontal"), title
        files.extend(spec["y"])
    assert len(files) == len(set(f for f in files if f.endswith(".png"))) + len([f for f in files if not f.endswith(".png")])
    assert not any("final_ops.csv" in f for f in files)
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in doc["stages"].values() for o in s.get("outs", [])]
    for f in files:
        assert any(f == o or f.startswith(o + "/") for o in outs), f"{f} is no stage's output"
