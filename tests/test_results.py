"""docs/results.md from metrics/*.json (`edgesmith results`): the final model marked, figures formatted,
a model outside the budget shown as such, a missing metrics file skipping its section."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.common import results
from pipelines.common.errors import UserError


def _model(name, dtype, accuracy, size, p50, within, **extra):
    return {"name": name, "file": f"models/tflite/{name}.tflite", "dtype": dtype, "accuracy": accuracy,
            "size_bytes": size, "params": 45162, "macs": 2169216, "memory_access_bytes": 142098,
            "peak_activation_bytes": 15680, "threads": 1, "init_ms": 0.4, "latency_p50_ms": p50,
            "latency_p90_ms": p50 * 1.1, "latency_p99_ms": p50 * 1.3, "within_budget": within, **extra}  # fmt: skip


def _write(folder, name, doc):
    (folder / name).write_text(json.dumps(doc))


@pytest.fixture
def metrics(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    _write(folder, "report.json", {
        "pipeline": "vision", "git_commit": "0123456789abcdef", "final": "student_kd_int8",
        "models": [
            _model("student_kd_int8", "int8", 0.9218, 63760, 0.09509, True,
                   predicted_latency_ms={"host": 0.083, "cortex_a53": 0.414}, prediction_error_host=-0.127),
            _model("student_pruned_int8", "int8", 0.9142, 38097, 0.09434, False),
        ],
        "compression_chain": {"quantize": {"model": "student_pruned", "kernel_sparsity": 0.5, "final": None,
                                           "attempts": [{"method": "qat_int8", "model": "student_pruned_qat_int8",
                                                         "accuracy": 0.9143, "within_budget": False}]}},
    })  # fmt: skip
    _write(folder, "distill.json", {
        "teacher_accuracy": 0.9332, "student_params": 46554, "seeds": [42, 43],
        "runs": [{"seed": 42, "baseline_accuracy": 0.9201, "kd_accuracy": 0.9221, "kd_gain_points": 0.2},
                 {"seed": 43, "baseline_accuracy": 0.9231, "kd_accuracy": 0.9258, "kd_gain_points": 0.27}],
        "kd_gain_points": {"mean": 0.24, "std": 0.05, "n": 2, "ci95_low": -0.21, "ci95_high": 0.68},
        "budget": {"model": "student_kd", "accuracy": 0.9221, "teacher_accuracy": 0.9332, "drop_points": 1.11,
                   "max_accuracy_drop": 1.5, "within": True},
    })  # fmt: skip
    return folder


def _row(text, name):
    """The Markdown table row of the models table that names `name`."""
    rows = [line for line in text.splitlines() if line.startswith("|") and f"`{name}`" in line and "int8 |" in line]
    assert len(rows) == 1, rows
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_the_final_model_is_marked_and_its_figures_formatted(metrics):
    text = results.render(metrics)
    final = _row(text, "student_kd_int8")
    assert final[0] == "★ **`student_kd_int8`**"
    assert final[1:5] == ["int8", "92.18%", "63,760", "-"]  # accuracy in %, bytes with separators, no gzip figure
    assert "0.095" in final and "0.105" in final  # p50 and p90 to three decimals
    assert final[-1] == "yes"
    other = _row(text, "student_pruned_int8")
    assert other[0] == "`student_pruned_int8`" and "★" not in other[0]
    assert "Final model: **`student_kd_int8`**" in text and "commit `0123456789ab`" in text
    assert "0.083 (-13%)" in text  # the host prediction with its error


def test_a_model_outside_the_budget_shows_it(metrics):
    text = results.render(metrics)
    assert _row(text, "student_pruned_int8")[-1] == "**no**"
    assert "| qat_int8 | `student_pruned_qat_int8` | 91.43% | **no** |" in text
    assert "Chosen: none" in text


def test_distill_section_gives_each_seed_and_the_interval(metrics):
    text = results.render(metrics)
    assert "| 42 | 92.01 % | 92.21 % | +0.20 |" in text
    assert "| 43 | 92.31 % | 92.58 % | +0.27 |" in text
    assert "kd_gain 0.24 ± 0.05 (95 % CI -0.21 to 0.68) points" in text
    assert "`student_kd` at 92.21 % is 1.11 points below the teacher" in text and "within the budget" in text


def test_a_missing_file_skips_its_section(metrics):
    text = results.render(metrics)
    assert "## Distillation (`metrics/distill.json`)" in text
    for absent in ("## Teacher", "## Pruning", "## Benchmark", "## Host calibration", "## Graph pipeline", "## Data"):
        assert absent not in text
    (metrics / "distill.json").unlink()
    text = results.render(metrics)
    assert "## Distillation" not in text and "★ **`student_kd_int8`**" in text
    (metrics / "report.json").unlink()
    assert "No metrics files" in results.render(metrics)


def test_graph_report_marks_its_final_file_and_targets(metrics):
    _write(metrics, "graph_report.json", {
        "pipeline": "graph", "final": "student_int8", "datasets": {"node": "Cora", "graph": "MUTAG"},
        "models": [{"name": "gcn", "dataset": "Cora", "task": "node", "dtype": "float32", "accuracy": 0.8168,
                    "accuracy_std": 0.00931, "size_bytes": 94645, "params": 23063, "latency_p50_ms": 0.717},
                   {"name": "student_int8", "dataset": "Cora", "task": "node", "dtype": "int8", "accuracy": 0.829,
                    "size_bytes": 377728, "params": 368903, "latency_p50_ms": 0.01155}],
        "targets": {"gat_accuracy": {"value": 81.5, "target": ">= 82.0", "holds": False, "what": "GAT accuracy"}},
    })  # fmt: skip
    text = results.render(metrics)
    assert "| ★ **`student_int8`** | Cora | int8 | 82.90 % | - | 377,728 |" in text  # published: none for the student
    assert "| `gcn` | Cora | float32 | 81.68 ± 0.93 % |" in text
    assert "| GAT accuracy | 81.50 | >= 82.0 | **no** |" in text


def test_bad_json_and_missing_folder_are_one_line_errors(tmp_path, metrics):
    (metrics / "teacher.json").write_text("{not json")
    with pytest.raises(UserError, match="teacher.json"):
        results.render(metrics)
    with pytest.raises(UserError, match="no such folder"):
        results.render(tmp_path / "nowhere")


def test_the_command_writes_the_file(metrics, tmp_path, capsys):
    out = tmp_path / "docs" / "results.md"
    assert main(["results", "--metrics", str(metrics), "--out", str(out)]) == 0
    assert out.read_text() == results.render(metrics)
    assert main(["results", "--metrics", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_search_section_lists_the_front_with_the_chosen_and_the_default_trial(metrics):
    def trial(tid, acc, ms):
        return {"trial_id": tid, "val_accuracy": acc, "latency_ms": ms, "size_bytes": 20040, "arch": {"ds_widths": [64]}}

    _write(metrics, "search.json", {
        "oracle": "evolution", "objective": "constrained", "best_trial": "13", "default_trial": "00",
        "front": [trial("08", 0.8533, 0.0212), trial("13", 0.8617, 0.0406)],
        "default_trial_figures": trial("00", 0.8558, 0.0851), "hypervolume": 2.6465,
        "screening": {"shortlisted": 8, "not shortlisted": 9, "over limit": 23, "not costed": 260},
        "proxy_correlation": {"proxy": "naswot", "trials": 14, "spearman_val_accuracy": 0.1882},
    })  # fmt: skip
    text = results.render(metrics)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    assert "(chosen)" in rows["`13` (chosen)"] and "86.17 %" in rows["`13` (chosen)"]
    assert "85.58 %" in rows["`00` (default student)"] and "0.0851" in rows["`00` (default student)"]
    assert "| hypervolume" in text and "2.6465" in text and "8, 9, 23, 260" in text and "0.1882 over 14" in text
