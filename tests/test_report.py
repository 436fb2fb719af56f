"""The report: joining results, choosing the final model, the Pareto front, plots and table."""

from __future__ import annotations

from PIL import Image

from pipelines.common import io, plots, render, report


def rows():
    q = {
        "teacher_fp32": {"file": "a.tflite", "dtype": "float32", "accuracy": 0.925, "size_bytes": 4000, "params": 10},
        "teacher_int8": {"file": "b.tflite", "dtype": "int8", "accuracy": 0.921, "size_bytes": 1000, "params": 10},
        "tiny_int8": {"file": "c.tflite", "dtype": "int8", "accuracy": 0.80, "size_bytes": 100, "params": 2},
    }
    m = {
        "teacher_fp32": {"latency_p50_ms": 0.5, "latency_p90_ms": 0.6, "latency_p99_ms": 0.9, "threads": 1, "init_ms": 2},
        "teacher_int8": {"latency_p50_ms": 0.6, "latency_p90_ms": 0.7, "latency_p99_ms": 1.0, "threads": 1, "init_ms": 2},
        "tiny_int8": {"latency_p50_ms": 0.05, "latency_p90_ms": 0.06, "latency_p99_ms": 0.1, "threads": 1, "init_ms": 1},
    }
    return report.model_rows(q, m)


def test_rows_have_every_contract_field():
    r = rows()
    assert [x["name"] for x in r] == ["teacher_fp32", "teacher_int8", "tiny_int8"]
    assert all(set(x) == set(report.FIELDS) | set(report.EXTRA_FIELDS) for x in r)
    assert r[1]["latency_p50_ms"] == 0.6 and r[1]["size_bytes"] == 1000 and r[1]["macs"] is None


def test_final_is_best_ranked_within_the_accuracy_budget():
    r = rows()
    assert report.choose_final(r, 1.0, "size_bytes") == "teacher_int8"
    assert report.choose_final(r, 1.0, "latency_p50_ms") == "teacher_fp32"
    assert report.choose_final(r, 0.3, "size_bytes") == "teacher_fp32"
    assert report.choose_final(r, 20.0, "size_bytes") == "tiny_int8"
    # only int8 files may be final: the fastest int8 one, not the faster fp32 teacher
    assert report.choose_final(r, 1.0, "latency_p50_ms", dtypes=["int8", "mixed"]) == "teacher_int8"
    assert report.choose_final(r, 1.0, "size_bytes", dtypes=["float32"]) == "teacher_fp32"
    # p50s within the tolerance tie: the more accurate model wins (teacher_int8 is 20 % slower)
    r[0]["latency_p50_ms"] = 0.58
    assert report.choose_final(r, 1.0, "latency_p50_ms") == "teacher_fp32"
    assert report.choose_final(r, 1.0, "latency_p50_ms", tie_tolerance=0.05) == "teacher_fp32"
    r[0]["accuracy"] = 0.92
    assert report.choose_final(r, 1.0, "latency_p50_ms") == "teacher_fp32"  # faster, less accurate
    assert report.choose_final(r, 1.0, "latency_p50_ms", tie_tolerance=0.05) == "teacher_int8"  # 3 % slower: a tie
    assert report.choose_final(r, 1.0, "latency_p50_ms", tie_tolerance=0.01) == "teacher_fp32"
    r[0]["accuracy"], r[0]["latency_p50_ms"] = 0.925, 0.5
    # no file of those dtypes within the budget: the most accurate model, as with no reference
    assert report.choose_final(r, 1.0, "size_bytes", dtypes=["float16"]) == "teacher_fp32"


def test_pareto_front_drops_dominated_models():
    assert report.pareto_front(rows()) == ["teacher_fp32", "tiny_int8"]


def test_csv_plot_and_table(tmp_path):
    r = rows()
    text = io.csv_text(r, report.FIELDS)
    assert text.splitlines()[0] == ",".join(report.FIELDS)
    assert len(text.splitlines()) == 4
    for cost in ("latency_p50_ms", "memory_access_bytes"):
        for row, mac in zip(r, (4e6, 1e6, 1e5), strict=True):
            row["memory_access_bytes"] = mac
        png = tmp_path / f"{cost}.png"
        plots.plot_accuracy_vs(r, "teacher_int8", png, cost)
        with Image.open(png) as im:
            assert im.size[0] > 400 and im.size[1] > 300
    ops = [{"index": i, "op": "CONV_2D", "macs": 1e6 * i, "memory_access_bytes": 1e4 * i} for i in range(5)]
    plots.plot_per_op(ops, "teacher_int8", tmp_path / "ops.png")
    assert (tmp_path / "ops.png").stat().st_size > 5000
    t = render.table({"models": r, "final": "teacher_int8"})
    assert "teacher_int8" in t and t.splitlines()[-1] == "final: teacher_int8"
    r[1]["predicted_latency_ms"] = {"host": 0.5, "cortex_a53": 3.0}
    r[1]["prediction_error_host"] = -0.1667
    t = render.table({"models": r, "final": "teacher_int8"})
    header = t.splitlines()[0].split()
    assert header[-2:] == ["pred_host_ms", "pred_cortex_a53_ms"]
    assert "0.5000 (-17%)" in t and "3.0000" in t


def test_final_counts_the_budget_from_the_reference_model():
    r = rows()
    r[2]["accuracy"] = 0.92  # tiny_int8 within 0.5 points of the teacher, 0.1 below teacher_int8
    assert report.choose_final(r, 0.5, "size_bytes", reference="teacher_fp32") == "tiny_int8"
    r[2]["accuracy"] = 0.915
    assert report.choose_final(r, 0.5, "size_bytes", reference="teacher_fp32") == "teacher_int8"
    # nothing within the budget: the reference itself
    assert report.choose_final(r[:1] + [{**r[2], "accuracy": 0.5}], 0.5, "size_bytes", "teacher_fp32") == "teacher_fp32"


def test_waterfall_follows_the_chain(tmp_path):
    q = {name: {"file": f"{name}.tflite", "dtype": dtype, "accuracy": acc, "size_bytes": size}
         for name, dtype, acc, size in [("teacher_fp32", "float32", 0.92, 3_400_000),
                                        ("student_baseline_fp32", "float32", 0.89, 116_000),
                                        ("student_kd_fp32", "float32", 0.90, 116_000),
                                        ("student_pruned_fp32", "float32", 0.899, 116_000),
                                        ("student_pruned_int8", "int8", 0.897, 43_000)]}  # fmt: skip
    m = {name: {"latency_p50_ms": 0.5 if name.startswith("teacher") else 0.05} for name in q}
    steps = report.waterfall_steps(report.model_rows(q, m), "student_pruned_int8")
    assert [s["step"] for s in steps] == ["teacher", "baseline student", "distilled", "pruned", "quantized (int8)"]
    assert steps[-1]["size_bytes"] == 43_000 and steps[0]["latency_p50_ms"] == 0.5
    plots.plot_waterfall(steps, tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").size[0] > 1000


def _target_rows(a53_fp32_ms: float, a53_int8_ms: float) -> tuple[list[dict], dict]:
    """rows() with predictions for two profiles and an emulated count on cortex_a53 only."""
    r = rows()
    for x, pred in zip(r, ({"cortex_a53": 1.0, "cortex_x": 0.2}, {"cortex_a53": 2.0, "cortex_x": 0.9},
                           {"cortex_a53": 0.1, "cortex_x": 0.01}), strict=True):  # fmt: skip
        x["predicted_latency_ms"] = pred
    r[0]["integer_only"], r[1]["integer_only"], r[2]["integer_only"] = False, True, True
    est = {"teacher_fp32": a53_fp32_ms, "teacher_int8": a53_int8_ms, "tiny_int8": 0.01}
    arm = {"available": True, "profiles": {"cortex_a53": {"core": "cortex-a53", "ipc": 1.0, "clock_ghz": 1.0}},
           "models": {n: {"cortex_a53": {"instructions": int(ms * 1e6), "estimated_latency_ms": ms}} for n, ms in est.items()}}
    return r, arm


def test_final_follows_the_target_device_and_names_its_evidence():
    # the host measures fp32 faster; the emulated A53 makes int8 faster in one case and slower in the other
    for fp32_ms, int8_ms, expected in ((3.0, 1.0, "teacher_int8"), (1.0, 3.0, "teacher_fp32")):
        r, arm = _target_rows(fp32_ms, int8_ms)
        chosen = report.target_latency(r, {"device": "cortex_a53", "int8_only": False}, {}, arm)
        assert chosen["evidence"] == "emulated" and "cortex-a53" in chosen["detail"]
        assert report.choose_final(r, 1.0, "target_latency_ms", reference="teacher_fp32") == expected
    r, arm = _target_rows(3.0, 1.0)
    host = report.target_latency(r, {"device": "host", "int8_only": False}, {}, arm)
    assert host["evidence"] == "measured" and r[0]["target_latency_ms"] == 0.5
    assert report.choose_final(r, 1.0, "target_latency_ms", reference="teacher_fp32") == "teacher_fp32"
    # no count for cortex_x: its roofline prediction decides, and the report says why
    r, arm = _target_rows(3.0, 1.0)
    fallback = report.target_latency(r, {"device": "cortex_x", "int8_only": False}, {}, arm)
    assert fallback["evidence"] == "roofline" and "no count for cortex_x" in fallback["detail"]
    assert report.choose_final(r, 1.0, "target_latency_ms", reference="teacher_fp32") == "teacher_fp32"


def test_an_int8_accelerator_target_only_takes_full_int8_files():
    r, arm = _target_rows(1.0, 3.0)  # fp32 is faster on the core ...
    chosen = report.target_latency(r, {"device": "cortex_a53", "int8_only": False}, {"cortex_a53": {"int8_only": True}}, arm)
    assert chosen["int8_only"] is True  # ... but the profile is an int8 accelerator
    assert report.choose_final(r, 1.0, "target_latency_ms", reference="teacher_fp32",
                               integer_only=chosen["int8_only"]) == "teacher_int8"  # fmt: skip


def test_the_report_names_the_searched_trial_against_the_default_students_and_the_front():
    from pipelines.common import render, report

    def trial(tid, acc, ms, size):
        return {"trial_id": tid, "val_accuracy": acc, "latency_ms": ms, "size_bytes": size, "arch": {"ds_widths": [8]}}

    search = {"best_trial": "13", "default_trial": "00", "default_trial_figures": trial("00", 0.8558, 0.0851, 63760),
              "front": [trial("08", 0.8533, 0.0212, 20040), trial("13", 0.8617, 0.0406, 37904)], "hypervolume": 2.6465,
              "device": "cortex_a76", "objective": "constrained"}  # fmt: skip
    section = report.search_section(search)
    assert section["chosen_default"] is False and section["front"] == search["front"]
    line = render.search_line(section)
    assert "trial 13 (val accuracy 86.17%, 0.0406 ms" in line and "over the default student's trial 00" in line
    assert "front of 2 trials [08, 13] on cortex_a76, hypervolume 2.6465" in line
    same = report.search_section({**search, "best_trial": "00", "front": [trial("00", 0.8558, 0.0851, 63760)]})
    assert same["chosen_default"] and "the default student itself" in render.search_line(same)
