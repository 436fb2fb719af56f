"""The params schema: the shipped files are valid, and every kind of bad edit is one clear line.

Covered: the shipped params files and the quick profile (the same keys, the same stages); 33 bad
params files given to the stage that reads them (each exits 2 with one line naming the key, and no
output is touched); comma-separated params lists (items stripped, a bad item named with its key);
missing keys and sections; YAML syntax errors with their line number.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from pipelines.common.errors import ParamsError
from pipelines.common.params import SCHEMA, comma_list, load_params, validate
from tests.conftest import QUICK, ROOT, run_env

GOOD = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_are_valid_and_profiles_have_the_same_keys():
    full = load_params(ROOT / "params.yaml")
    quick = load_params(QUICK / "params.yaml")
    assert set(full) == set(SCHEMA)
    for section in SCHEMA:
        assert set(full[section]) == set(quick[section]) == set(SCHEMA[section])


def test_the_quick_profile_runs_the_same_stages():
    """A copy, not a symlink: DVC reads a symlinked dvc.yaml from past revisions as invalid (dvc exp show)."""
    quick = QUICK / "dvc.yaml"
    assert not quick.is_symlink() and quick.read_bytes() == (ROOT / "dvc.yaml").read_bytes()


def _apply(raw: dict, path: str, value=None, delete: bool = False) -> dict:
    *parents, key = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if delete:
        del node[key]
    else:
        node[key] = value
    return raw


def edited(path: str, value=None, delete: bool = False) -> dict:
    return _apply(copy.deepcopy(GOOD), path, value, delete)


BAD_EDITS = [
    ("teacher.epochs", "ten", "teacher.epochs must be an integer >= 1, got 'ten'"),
    ("teacher.epochs", 0, "teacher.epochs must be an integer >= 1, got 0"),
    ("teacher.epochs", 2.5, "teacher.epochs must be an integer >= 1, got 2.5"),
    ("teacher.epochs", True, "teacher.epochs must be an integer >= 1, got true"),
    ("teacher.learning_rate", 0.0, "teacher.learning_rate must be a number > 0 and <= 1, got 0.0"),
    ("teacher.learning_rate", -0.1, "teacher.learning_rate must be a number > 0 and <= 1"),
    ("teacher.widths", [], "teacher.widths must be a list of at least 1 integers"),
    ("teacher.widths", [32, "x"], "teacher.widths must be a list of at least 1 integers"),
    ("teacher.dropout", 1.5, "teacher.dropout must be a number >= 0 and <= 0.9, got 1.5"),
    ("teacher.augment_flip", "yes", "teacher.augment_flip must be true or false, got 'yes'"),
    ("teacher.colour", 3, "unknown key teacher.colour; allowed: widths"),
    ("data.source", "csv", "data.source must be one of 'idx', 'npz', 'folder', got 'csv'"),
    ("data.val_fraction", 0.0, "data.val_fraction must be a number > 0 and <= 0.5, got 0.0"),
    ("data.max_train", -5, "data.max_train must be an integer >= 0, got -5"),
    ("data.path", "", "data.path must be a string, got ''"),
    ("data.image_size", [32, 32, 32], "data.image_size must be [side] or [height, width], got [32, 32, 32]"),
    ("data.image_size", 32, "data.image_size must be a list of at least 1 integers each >= 4 and <= 4096 or null, got 32"),
    ("data.class_names", ["cat", "cat"], "data.class_names must be a list of at least 2 distinct non-empty strings"),
    ("data.color", "sepia", "data.color must be one of 'auto', 'grayscale', 'rgb', got 'sepia'"),
    ("search.max_macs", "automatic", "search.max_macs must be an integer >= 1, or 'auto' or null, got 'automatic'"),
    ("student.stem_downsample", 0, "student.stem_downsample must be an integer >= 1 and <= 64, or 'auto', got 0"),
    ("benchmark.threads", 0, "benchmark.threads must be an integer >= 1 and <= 256, got 0"),
    ("benchmark.pin_cpu", -1, "benchmark.pin_cpu must be an integer >= 0 or null, got -1"),
    ("benchmark.min_seconds", -1.0, "benchmark.min_seconds must be a number >= 0, got -1.0"),
    ("report.rank_by", "speed", "report.rank_by must be one of 'size_bytes', 'latency_p50_ms', 'target_latency_ms', got 'speed'"),
    ("base.seed", None, "base.seed must be an integer >= 0, got null"),
    ("devices.profiles.cortex_a53.bandwidth_gbs", -1, "devices.profiles.cortex_a53.bandwidth_gbs must be a number > 0, got -1"),
    ("devices.profiles.cortex_a53.vector_efficiency", 1.5, "vector_efficiency must be a number > 0 and <= 1, got 1.5"),
    ("devices.profiles.cortex_a53.clock_mhz", 1400, "unknown key devices.profiles.cortex_a53.clock_mhz; allowed: description"),
    ("devices.profiles.cortex_a53.emulate", "cortex-a99", "devices.profiles.cortex_a53.emulate must be one of"),
    ("target.device", "pixel", "target.device must be host, USER@HOST or one of cortex_a53"),
    ("devices.profiles.phone", 3, "devices.profiles.phone must be a mapping with keys description, peak_gmacs_fp32"),
    ("devices.profiles", {}, "devices.profiles must be a mapping of at least 1 names to entries"),
    ("quantize", None, "section 'quantize' must be a mapping of its keys, got nothing"),
    ("extra", {"a": 1}, "unknown section 'extra'; allowed: base, data"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_EDITS, ids=[f"{k}={v!r}" for k, v, _ in BAD_EDITS])
def test_bad_value_names_the_key_what_is_allowed_and_what_was_given(key, value, message):
    with pytest.raises(ParamsError) as err:
        validate(edited(key, value))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_comma_list_strips_items_and_names_the_key_on_a_bad_one():
    assert comma_list(" int8, mixed ,", "report.final_dtypes", ("int8", "mixed")) == ["int8", "mixed"]
    assert comma_list(None, "quantize.float_layers") == []
    with pytest.raises(ParamsError, match=r"report.final_dtypes must be a comma-separated subset of int8, mixed, got 'int4'"):
        comma_list("int4", "report.final_dtypes", ("int8", "mixed"))
    with pytest.raises(ParamsError, match="search.blocks must be a comma-separated subset"):
        comma_list(" , ", "search.blocks", ("separable", "standard"), required=True)


def test_missing_key_and_missing_section():
    with pytest.raises(ParamsError, match=r"missing key teacher.epochs, which must be an integer >= 1"):
        validate(edited("teacher.epochs", delete=True))
    with pytest.raises(ParamsError, match=r"section 'report' must be a mapping"):
        validate(edited("report", delete=True))


def test_only_requested_sections_are_required():
    raw = edited("teacher", delete=True)
    assert set(validate(raw, sections=["base", "data"])) == {"base", "data"}


def test_yaml_syntax_error_gives_line_number(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("base:\n  seed: [1, 2\ndata: {}\n")
    with pytest.raises(ParamsError, match=r"params.yaml: YAML syntax error at line \d+"):
        load_params(p)


def test_stage_with_bad_params_exits_2_with_one_line_and_writes_nothing(tmp_path, idx_dir):
    raw = edited("data.path", str(idx_dir))
    raw["data"]["val_fraction"] = 0.9
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out, metrics = tmp_path / "out" / "dataset.npz", tmp_path / "metrics" / "data.json"
    proc = subprocess.run(
        [sys.executable, "-m", "stages.data", "--params", str(params), "--out", str(out), "--metrics", str(metrics)],
        capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: params.yaml: data.val_fraction must be a number > 0 and <= 0.5, got 0.9"]
    assert not out.parent.exists() and not metrics.parent.exists()


# Bad edits of a whole params file, each given to the stage (or command) that reads that section.
# (what is edited, the edit, who reads it, what the one line must say)
QUICK_GOOD = yaml.safe_load((QUICK / "params.yaml").read_text())
STAGE_ARGS = {
    "data": ["--out", "out/dataset.npz", "--metrics", "metrics/data.json"],
    "teacher": ["--data", "in/dataset.npz", "--out", "out/teacher.keras", "--history", "plots/teacher.csv",
                "--metrics", "metrics/teacher.json"],
    "quantize": ["--data", "in/dataset.npz", "--model", "teacher=in/teacher.keras", "--out", "out/tflite",
                 "--metrics", "metrics/quantize.json"],
    "benchmark": ["--models", "in/tflite", "--calibration", "in/calibrate.json", "--metrics", "metrics/benchmark.json"],
    "report": ["--quantize", "in/q.json", "--benchmark", "in/b.json", "--calibration", "in/c.json",
               "--out", "metrics/report.json", "--summary", "metrics/summary.json", "--plots", "plots/report"],
    "search": ["--data", "in/dataset.npz", "--out", "out/search.json", "--plots", "plots/search", "--metrics",
               "metrics/search.json"],
    "gnn_search": ["--data", "in/graph", "--out", "out/search.json", "--metrics", "metrics/gnn_search.json",
                   "--tuner-dir", "out/tuner"],
    "graph_data": ["--out", "out/graph", "--metrics", "metrics/graph_data.json"],
    "gnn_report": ["--graph-data", "in/g.json", "--search", "in/s.json", "--train", "in/t.json", "--distill", "in/d.json",
                   "--export", "in/e.json", "--benchmark", "in/b.json", "--out", "metrics/graph_report.json",
                   "--summary", "metrics/graph_summary.json", "--plots", "plots/graph_report"],
    "check-budget": ["--report", "in/report.json"],
}  # fmt: skip


def _set(path: str, value=None, delete: bool = False):
    return lambda raw: _apply(raw, path, value, delete)


def _text(old: str, new: str):
    return lambda text: text.replace(old, new, 1)


FILE_EDITS = [
    ("unknown key", _set("teacher.colour", 3), "teacher", "unknown key teacher.colour; allowed: widths"),
    ("wrong type", _set("teacher.epochs", "ten"), "teacher", "teacher.epochs must be an integer >= 1, got 'ten'"),
    ("float for int", _set("teacher.batch_size", 12.5), "teacher", "teacher.batch_size must be an integer >= 1, got 12.5"),
    ("string for bool", _set("teacher.augment_flip", "yes"), "teacher", "teacher.augment_flip must be true or false"),
    ("out of range", _set("teacher.dropout", 1.5), "teacher", "teacher.dropout must be a number >= 0 and <= 0.9, got 1.5"),
    ("bad list", _set("teacher.widths", [32, "x"]), "teacher", "teacher.widths must be a list of at least 1 integers"),
    ("out of range", _set("data.val_fraction", 0.9), "data", "data.val_fraction must be a number > 0 and <= 0.5, got 0.9"),
    ("not a choice", _set("data.source", "csv"), "data", "data.source must be one of 'idx', 'npz', 'folder', got 'csv'"),
    ("negative", _set("data.max_train", -5), "data", "data.max_train must be an integer >= 0, got -5"),
    ("empty string", _set("data.path", ""), "data", "data.path must be a string, got ''"),
    ("null", _set("base.seed", None), "data", "base.seed must be an integer >= 0, got null"),
    ("unknown section", _set("extra", {"a": 1}), "data", "unknown section 'extra'; allowed: base, data"),
    ("zero", _set("quantize.representative_samples", 0), "quantize", "quantize.representative_samples must be an integer >= 1"),
    ("missing section", _set("quantize", delete=True), "quantize", "section 'quantize' must be a mapping of its keys, got nothing"),
    ("missing key", _set("benchmark.threads", delete=True), "benchmark", "missing key benchmark.threads, which must be an integer >= 1"),
    ("negative", _set("benchmark.pin_cpu", -1), "benchmark", "benchmark.pin_cpu must be an integer >= 0 or null, got -1"),
    ("negative", _set("devices.profiles.cortex_a53.bandwidth_gbs", -1), "benchmark",
     "devices.profiles.cortex_a53.bandwidth_gbs must be a number > 0, got -1"),
    ("empty table", _set("devices.profiles", {}), "benchmark", "devices.profiles must be a mapping of at least 1 names"),
    ("not a choice", _set("report.rank_by", "speed"), "report", "report.rank_by must be one of 'size_bytes', 'latency_p50_ms', 'target_latency_ms', got 'speed'"),
    ("negative budget", _set("budget.max_accuracy_drop", -1), "quantize", "budget.max_accuracy_drop must be a number >= 0 and <= 100, got -1"),
    ("negative budget", _set("budget.min_accuracy", -0.1), "check-budget", "budget.min_accuracy must be a number >= 0 and <= 1, got -0.1"),
    ("negative budget", _set("budget.max_latency_p50_ms", -2.0), "check-budget", "budget.max_latency_p50_ms must be a number > 0, got -2.0"),
    ("zero budget", _set("budget.max_size_bytes", 0), "check-budget", "budget.max_size_bytes must be an integer >= 1, got 0"),
    ("missing section", _set("budget", delete=True), "check-budget", "section 'budget' must be a mapping of its keys, got nothing"),
    ("negative budget", _set("gnn_search.max_params", -1), "gnn_search", "gnn_search.max_params must be an integer >= 1, or 'auto', got -1"),
    ("both graph halves null", lambda raw: _apply(_apply(raw, "graph_data.node_dataset"), "graph_data.graph_dataset"), "graph_data",
     "graph_data.node_dataset and graph_data.graph_dataset are both null: name at least one dataset"),
    ("split not summing to 1", _set("graph_data.split", [0.5, 0.2, 0.2]), "graph_data",
     "graph_data.split must be train, val and test fractions summing to 1 (train > 0), got [0.5, 0.2, 0.2]"),
    ("split of two", _set("graph_data.split", [0.8, 0.2]), "graph_data", "graph_data.split must be a list of 3 numbers each >= 0 and <= 1, got [0.8, 0.2]"),
    ("floor not a number", _set("gnn_report.min_accuracy", {"Cora": {"gcn": "high"}}), "gnn_report",
     "gnn_report.min_accuracy must be a mapping of names to mappings of names to numbers each >= 0 and <= 100"),
    ("empty search space", _set("gnn_search.layers", []), "gnn_search", "gnn_search.layers must be a list of at least 1 integers"),
    ("empty search space", _set("gnn_search.convs", ""), "gnn_search", "gnn_search.convs must be a string, got ''"),
    ("empty search space", _set("gnn_search.convs", " , "), "gnn_search", "gnn_search.convs must be a comma-separated subset of gcn"),
    ("unknown conv", _set("gnn_search.convs", "gcn,transformer"), "gnn_search", "gnn_search.convs must be a comma-separated subset"),
    ("inverted range", _set("gnn_search.dropout_min", 0.85), "gnn_search", "gnn_search.dropout_min (0.85) must be <= gnn_search.dropout_max (0.8)"),
    ("rule between keys", _set("search.tournament", 99), "search", "params.yaml: search.tournament (99) must be <= search.population (3)"),
    ("rule between keys", _set("search.device", "pixel_9"), "search", "params.yaml: search.device must be one of cortex_a53"),
    ("rule between keys", _set("search.squeeze_excite", "both"), "search", "params.yaml: search.squeeze_excite must be 'never' while quantize.chain_modes has qat"),
    # the whole file is checked by every stage: a typo in a late stage's section stops the first one
    ("late stage's typo", _set("report.rank_by", "speed"), "data", "report.rank_by must be one of 'size_bytes'"),
    ("late stage's typo", _set("gnn_report.colour", 1), "data", "unknown key gnn_report.colour; allowed:"),
    ("late stage's typo", _set("search.tournament", 99), "teacher", "search.tournament (99) must be <= search.population (3)"),
    ("YAML syntax error", _text("  epochs: 2\n", "  epochs: [2\n"), "teacher", "params.yaml: YAML syntax error at line"),
    ("YAML tab", _text("  seed: 42", "\tseed: 42"), "data", "params.yaml: YAML syntax error at line"),
    ("not a mapping", lambda text: "- just\n- a list\n", "data", "params.yaml: must be a mapping of sections"),
]  # fmt: skip


def _snapshot(root) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "params.yaml"}  # fmt: skip


@pytest.mark.parametrize(("kind", "edit", "who", "message"), FILE_EDITS,
                         ids=[f"{who}:{kind}:{i}" for i, (kind, _, who, _) in enumerate(FILE_EDITS)])  # fmt: skip
def test_a_bad_params_file_exits_2_with_one_line_and_changes_no_output(tmp_path, monkeypatch, capsys, kind, edit, who,
                                                                        message):
    import importlib

    from pipelines.cli import main

    raw = copy.deepcopy(QUICK_GOOD)
    raw["base"]["mlruns_dir"] = "mlruns"
    text = yaml.safe_dump(raw, sort_keys=False)
    try:
        text = yaml.safe_dump(edit(raw), sort_keys=False)
    except (TypeError, KeyError, AttributeError):  # an edit of the text itself
        text = edit(text)
    (tmp_path / "params.yaml").write_text(text)
    for rel in ("in/dataset.npz", "in/teacher.keras", "in/calibrate.json", "in/q.json", "in/b.json", "in/c.json",
                "in/graph/node.npz", "in/report.json", "out/dataset.npz", "out/teacher.keras", "out/search.json",
                "out/tflite/teacher_int8.tflite", "metrics/data.json", "metrics/teacher.json", "metrics/report.json",
                "metrics/gnn_search.json", "plots/teacher.csv", "plots/report/report.csv"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"previous {rel}\n")
    (tmp_path / "in" / "tflite").mkdir()
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [*STAGE_ARGS[who], "--params", "params.yaml"]
    if who == "check-budget":
        code = main(["check-budget", *args])
    else:
        with pytest.raises(SystemExit) as ended:
            importlib.import_module(f"stages.{who}").main(args)
        code = ended.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0], err
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "mlruns").exists()
