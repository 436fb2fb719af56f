"""Profiles and the schema's other faces: a profile's params.yaml is the project's params.yaml with
its overrides.yaml merged in (the committed quick profile is exactly that), and the JSON Schema that
`edgesmith params --schema` writes accepts what the schema accepts and rejects what it rejects."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pipelines.common import params
from pipelines.common.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_quick_profile_is_params_yaml_with_its_overrides(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (ROOT / "profiles/quick/params.yaml").read_text() == params.profile_params("profiles/quick")
    overrides = yaml.safe_load((ROOT / "profiles/quick/overrides.yaml").read_text())
    assert len((ROOT / "profiles/quick/overrides.yaml").read_text().splitlines()) < 80  # short: only what differs
    quick = yaml.safe_load((ROOT / "profiles/quick/params.yaml").read_text())
    main = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert quick["teacher"]["epochs"] == overrides["teacher"]["epochs"] != main["teacher"]["epochs"]
    assert quick["teacher"]["widths"] == main["teacher"]["widths"]  # not overridden: the project's value


def test_merge_overrides_table_entries_key_by_key():
    base = {"gnn_train": {"seeds": 5, "node_models": {"gcn": {"hidden": 64, "epochs": 400}, "gat": {"epochs": 300}}}}
    merged = params.merge(base, {"gnn_train": {"node_models": {"gcn": {"epochs": 50}}}})
    assert merged == {"gnn_train": {"seeds": 5, "node_models": {"gcn": {"hidden": 64, "epochs": 50}, "gat": {"epochs": 300}}}}
    assert base["gnn_train"]["node_models"]["gcn"]["epochs"] == 400  # the base is not changed


def test_a_bad_override_is_one_line_naming_the_file_and_key(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "overrides.yaml").write_text("teacher:\n  epochs: zero\n")
    with pytest.raises(ParamsError, match=r"overrides.yaml: teacher.epochs must be an integer >= 1, got 'zero'"):
        params.profile_params(folder, ROOT / "params.yaml")
    (folder / "overrides.yaml").write_text("teacher:\n  colour: red\n")
    with pytest.raises(ParamsError, match=r"unknown key teacher.colour"):
        params.profile_params(folder, ROOT / "params.yaml")


def _conforms(value, schema) -> bool:
    """The JSON Schema keywords `json_schema` uses, checked the way the specification says."""
    if "anyOf" in schema:
        return any(_conforms(value, s) for s in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    if "const" in schema:
        return value == schema["const"]
    kind = schema.get("type")
    checks = {"integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool), "string": lambda v: isinstance(v, str),
              "null": lambda v: v is None, "array": lambda v: isinstance(v, list),
              "object": lambda v: isinstance(v, dict)}  # fmt: skip
    if not checks[kind](value):
        return False
    if kind in ("integer", "number"):
        return (value >= schema.get("minimum", value) and value > schema.get("exclusiveMinimum", value - 1)
                and value <= schema.get("maximum", value))  # fmt: skip
    if kind == "string":
        return len(value) >= schema.get("minLength", 0)
    if kind == "array":
        unique = not schema.get("uniqueItems") or len({json.dumps(v) for v in value}) == len(value)
        return len(value) >= schema.get("minItems", 0) and unique and all(_conforms(v, schema["items"]) for v in value)
    if kind == "object":
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        if any(k not in value for k in schema.get("required", [])) or len(value) < schema.get("minProperties", 0):
            return False
        for k, v in value.items():
            sub = props.get(k, extra)
            if sub is False or (isinstance(sub, dict) and not _conforms(v, sub)):
                return False
    return True


@pytest.mark.parametrize(("edit", "ok"), [
    (lambda p: p, True),
    (lambda p: p["teacher"].update(epochs=0), False),
    (lambda p: p["teacher"].update(dropout=0.95), False),
    (lambda p: p["data"].update(source="csv"), False),
    (lambda p: p["search"].update(seed=None), True),
    (lambda p: p["teacher"].update(widths=[32, "x"]), False),
    (lambda p: p["devices"]["profiles"]["cortex_a53"].update(bandwidth_gbs=0), False),
    (lambda p: p["teacher"].update(colour=1), False),
    (lambda p: p.pop("budget"), False),
    (lambda p: p["search"].update(max_macs="auto"), True),
    (lambda p: p["search"].update(max_macs="some"), False),
    (lambda p: p["data"].update(class_names=["a", "a"]), False),
])  # fmt: skip
def test_the_json_schema_agrees_with_the_schema(edit, ok):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edited = copy.deepcopy(raw)
    edit(edited)
    schema = json.loads(json.dumps(params.json_schema()))  # what a file holds
    assert _conforms(edited, schema) is ok
    if ok:
        params.validate(edited)
    else:
        with pytest.raises(ParamsError):
            params.validate(edited)


def test_edgesmith_params_checks_writes_the_schema_and_the_profile(tmp_path, capsys, monkeypatch):
    from pipelines.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["params"]) == 0 and "params.yaml: valid" in capsys.readouterr().out
    assert main(["params", "--schema", str(tmp_path / "schema.json")]) == 0
    assert json.loads((tmp_path / "schema.json").read_text()) == params.json_schema()
    assert main(["params", "--profile", "profiles/quick", "--check"]) == 0
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "overrides.yaml").write_text("distill:\n  epochs: 1\n")
    assert main(["params", "--profile", str(folder), "--check"]) == 1  # not written yet
    assert main(["params", "--profile", str(folder)]) == 0
    assert yaml.safe_load((folder / "params.yaml").read_text())["distill"]["epochs"] == 1
    assert main(["params", "--profile", str(folder), "--check"]) == 0
