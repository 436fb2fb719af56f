"""The params schema: the shipped files are valid, and every kind of bad edit is one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from pipelines.common.errors import ParamsError
from pipelines.common.params import SCHEMA, load_params, validate
from tests.conftest import QUICK, ROOT, run_env

GOOD = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_are_valid_and_profiles_have_the_same_keys():
    full = load_params(ROOT / "params.yaml")
    quick = load_params(QUICK / "params.yaml")
    assert set(full) == set(SCHEMA)
    for section in SCHEMA:
        assert set(full[section]) == set(quick[section]) == set(SCHEMA[section])


def edited(path: str, value=None, delete: bool = False) -> dict:
    raw = copy.deepcopy(GOOD)
    *parents, key = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if delete:
        del node[key]
    else:
        node[key] = value
    return raw


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
    ("benchmark.threads", 0, "benchmark.threads must be an integer >= 1 and <= 256, got 0"),
    ("benchmark.pin_cpu", -1, "benchmark.pin_cpu must be an integer >= 0 or null, got -1"),
    ("benchmark.min_seconds", -1.0, "benchmark.min_seconds must be a number >= 0, got -1.0"),
    ("report.rank_by", "speed", "report.rank_by must be one of 'size_bytes', 'latency_p50_ms', got 'speed'"),
    ("base.seed", None, "base.seed must be an integer >= 0, got null"),
    ("devices.profiles.cortex_a53.bandwidth_gbs", -1, "devices.profiles.cortex_a53.bandwidth_gbs must be a number > 0, got -1"),
    ("devices.profiles.cortex_a53.vector_efficiency", 1.5, "vector_efficiency must be a number > 0 and <= 1, got 1.5"),
    ("devices.profiles.cortex_a53.clock_ghz", 1.4, "unknown key devices.profiles.cortex_a53.clock_ghz; allowed: description"),
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
