"""compare, check-budget and report --markdown on real reports and real MLflow summary runs."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from pipelines.cli import main
from pipelines.common import budget, compare, io, render, tracking
from tests.conftest import ROOT, run_env

REPORT = {
    "pipeline": "vision", "git_commit": "a" * 40, "final": "teacher_int8",
    "models": [
        {"name": "teacher_fp32", "dtype": "float32", "accuracy": 0.8, "size_bytes": 3_486_596, "latency_p50_ms": 0.5,
         "memory_access_bytes": 4_190_224, "macs": 19_132_160},
        {"name": "teacher_int8", "dtype": "int8", "accuracy": 0.79, "size_bytes": 887_680, "latency_p50_ms": 0.6,
         "memory_access_bytes": 1_048_930, "macs": 19_132_160},
    ],
}  # fmt: skip


def _params(tmp_path, **budget) -> str:
    raw = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    raw["base"]["mlruns_dir"] = "mlruns"
    raw["budget"].update(budget)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def _summary(tmp_path, doc: dict, tags: dict) -> str:
    side_by_side = {m["name"]: {k: v for k, v in m.items() if k not in ("name", "dtype")} for m in doc["models"]}
    return tracking.log_run(run_name="summary", experiment="edgesmith-vision-quick", mlruns_dir=tmp_path / "mlruns",
                            params={"final": doc["final"]}, metrics=side_by_side,
                            tags={"edgesmith.summary": "true", "edgesmith.final": doc["final"], **tags})  # fmt: skip


def test_check_budget_passes_and_fails_with_the_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.write_json(tmp_path / "metrics" / "report.json", REPORT)
    assert main(["check-budget", "--params", _params(tmp_path, min_accuracy=0.6)]) == 0
    out = capsys.readouterr().out
    assert "final model 'teacher_int8'" in out and out.strip().endswith("within budget")

    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "check-budget", "--params",
                           _params(tmp_path, min_accuracy=0.8, max_latency_p50_ms=0.25)],
                          capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  accuracy" in proc.stdout and "79.00%" in proc.stdout and ">= 80.00%" in proc.stdout
    assert "FAIL  latency_p50_ms" in proc.stdout and "0.600 ms" in proc.stdout and "<= 0.250 ms" in proc.stdout
    assert "ok    size_bytes" in proc.stdout
    assert proc.stdout.strip().endswith("over budget: accuracy, latency_p50_ms")


def test_a_figure_missing_from_the_report_breaks_its_bound():
    doc = copy.deepcopy(REPORT)
    doc["models"][1]["latency_p50_ms"] = None
    bounds = {"min_accuracy": 0.5, "max_latency_p50_ms": 9.0, "max_size_bytes": 10**9, "max_accuracy_drop": 1.5}
    checks = budget.check_budget(doc, bounds)
    assert [c["ok"] for c in checks] == [True, False, True, True]
    assert checks[3]["field"] == "teacher_drop_points" and checks[3]["value"] == pytest.approx(1.0)
    doc["models"][1]["accuracy"] = 0.78  # 2 points below the teacher: over a 1.5-point budget, within a 2-point one
    assert not budget.check_budget(doc, bounds)[3]["ok"]
    assert budget.check_budget(doc, {**bounds, "max_accuracy_drop": 2.0})[3]["ok"]


@pytest.mark.parametrize("content, says", [
    ('{"final": "teacher_int8", "models": [{"name": "teacher_int8"', "invalid JSON"),
    ('{"final": "teacher_int8"}', "no 'models' list"),
    ('[1, 2]', "no 'models' list"),
    ('{"final": "student_int8", "models": [{"name": "teacher_int8"}]}', "'final' model 'student_int8' is not among"),
])  # fmt: skip
@pytest.mark.parametrize("command", ["check-budget", "report", "compare"])
def test_a_broken_report_is_one_line_and_exit_2_not_over_budget(tmp_path, content, says, command):
    """Exit 1 means over budget to CI; a truncated or partial report must not look like one."""
    bad = tmp_path / "metrics" / "report.json"
    bad.parent.mkdir()
    bad.write_text(content)
    args = {"check-budget": ["--params", _params(tmp_path), "--report", str(bad)], "report": [str(bad)],
            "compare": [str(bad), str(bad), "--params", _params(tmp_path)]}[command]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", command, *args], capture_output=True, text=True,
                          env=run_env(), cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr


def test_markdown_summary(tmp_path, capsys):
    path = tmp_path / "report.json"
    io.write_json(path, REPORT)
    out = tmp_path / "summary.md"
    assert main(["report", str(path), "--markdown", str(out), "--params", _params(tmp_path, min_accuracy=0.8)]) == 0
    md = out.read_text()
    assert "final model: **`teacher_int8`**" in md and "Budget: **over budget**" in md
    assert "| ❌ | accuracy | 79.00% | >= 80.00% |" in md
    assert "| **teacher_int8** | int8 | 79.00% | 887,680 | 0.600 ms | 1,048,930 | 19,132,160 |" in md
    assert main(["report", str(path), "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("### edgesmith report")
    assert "Distillation" not in md  # a report without a compression chain has no distillation line


def test_markdown_states_kd_gain_with_its_interval():
    doc = copy.deepcopy(REPORT)
    doc["compression_chain"] = {"distill": {
        "seeds": [42, 43, 44], "baseline_accuracy": {"mean": 0.92173}, "kd_accuracy": {"mean": 0.92343},
        "kd_gain_points": {"mean": 0.17, "std": 0.1179, "ci95_low": -0.1229, "ci95_high": 0.4629},
    }}  # fmt: skip
    md = render.markdown(doc)
    assert ("Distillation: kd_gain **+0.17** points over the baseline student (seeds 42, 43, 44; std 0.12; "
            "95 % CI -0.12 to +0.46); baseline 92.17%, distilled 92.34%.") in md  # fmt: skip
    del doc["compression_chain"]["distill"]["kd_gain_points"]["ci95_low"]  # metrics written before the interval
    assert "(seeds 42, 43, 44; std 0.12); baseline" in render.markdown(doc)


def test_compare_by_experiment_name_commit_run_id_and_file(tmp_path, capsys):
    better = copy.deepcopy(REPORT)
    better["models"][1].update(accuracy=0.81, size_bytes=800_000, latency_p50_ms=0.45)
    run_a = _summary(tmp_path, REPORT, {"dvc.exp_name": "swift-leaf", "mlflow.source.git.commit": "a" * 40})
    _summary(tmp_path, better, {"dvc.exp_name": "bold-tree", "mlflow.source.git.commit": "b" * 40})
    store = tmp_path / "mlruns"

    a, b = compare.resolve("swift-leaf", store), compare.resolve("bbbbbbb", store)
    assert a.label.startswith("swift-leaf (experiment: summary run ") and b.final == "teacher_int8"
    assert b.models["teacher_int8"] == {"accuracy": 0.81, "size_bytes": 800_000, "latency_p50_ms": 0.45,
                                        "memory_access_bytes": 1_048_930}  # fmt: skip
    text = compare.table(a, b)
    assert "teacher_int8 (final AB)" in text
    line = next(li for li in text.splitlines() if "latency_p50_ms" in li and "0.6000" in li)
    assert line.split()[-2:] == ["-0.1500", "-25.0%"]
    assert any(li.split()[-3:] == ["+2.00", "pt", "+2.5%"] for li in text.splitlines() if "79.00%" in li)

    assert compare.resolve(run_a, store).models == a.models
    assert compare.resolve("bbbbbbb", store).label.startswith("bbbbbbb (commit: experiment bold-tree, summary run ")
    io.write_json(tmp_path / "r.json", REPORT)
    assert compare.resolve(str(tmp_path / "r.json"), store).models == a.models
    params = _params(tmp_path)
    assert main(["compare", "swift-leaf", "bold-tree", "--params", params]) == 0
    assert "final model: A teacher_int8, B teacher_int8" in capsys.readouterr().out
    assert main(["compare", "swift-leaf", "no-such-thing", "--params", params]) == 2
    assert "no-such-thing: not a report file, nor an MLflow run id" in capsys.readouterr().err


def test_compare_refuses_a_run_that_is_not_a_summary(tmp_path):
    rid = tracking.log_run(run_name="teacher", experiment="x", mlruns_dir=tmp_path / "mlruns", params={},
                           metrics={"accuracy": 0.5}, tags={})  # fmt: skip
    with pytest.raises(Exception, match="is not a summary run"):
        compare.resolve(rid, tmp_path / "mlruns")
