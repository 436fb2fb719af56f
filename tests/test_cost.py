"""The roofline cost model and the host calibration fit, on hand-made operator lists."""

from __future__ import annotations

import pytest

from pipelines.edge import calibrate, cost

PROFILE = {"peak_gmacs_fp32": 10.0, "peak_gmacs_int8": 40.0, "vector_efficiency": 0.5, "bandwidth_gbs": 5.0, "op_overhead_us": 2.0}


def op(macs, mac_bytes, dtype="float32", index=0, kind="CONV_2D"):
    return {"index": index, "op": kind, "dtype": dtype, "macs": macs, "memory_access_bytes": mac_bytes}


def test_roofline_takes_the_slower_of_compute_and_memory_plus_overhead():
    # 1e7 MACs at 10 GMAC/s = 1 ms; 1e6 bytes at 5 GB/s = 0.2 ms; + 2 us
    assert cost.op_seconds(op(1e7, 1e6), PROFILE) == (pytest.approx(1.002e-3), "compute")
    # int8 uses the int8 peak: 1e7 / 40e9 = 0.25 ms; memory 0.2 ms
    assert cost.op_seconds(op(1e7, 1e6, "int8"), PROFILE) == (pytest.approx(0.252e-3), "compute")
    # memory bound: 1e7 bytes at 5 GB/s = 2 ms
    assert cost.op_seconds(op(1e3, 1e7), PROFILE)[1] == "memory"
    assert cost.op_seconds(op(0, 10), PROFILE)[1] == "overhead"
    ops = [op(1e7, 1e6, index=0), op(1e3, 1e7, index=1)]
    assert cost.predict_ms(ops, PROFILE) == pytest.approx(1.002 + 2.002)
    assert [b["bound"] for b in cost.breakdown(ops, PROFILE)] == ["compute", "memory"]


def test_relative_error_sign():
    assert cost.relative_error(1.2, 1.0) == pytest.approx(0.2)
    assert cost.relative_error(0.5, 1.0) == pytest.approx(-0.5)


def test_fit_recovers_a_known_profile_from_synthetic_measurements():
    truth = {"peak_gmacs_fp32": 25.0, "peak_gmacs_int8": 12.0, "vector_efficiency": 0.4, "bandwidth_gbs": 8.0, "op_overhead_us": 3.0}
    suite = []
    for i, (macs, mac_bytes, dtype, n) in enumerate([
        (5e7, 1e5, "float32", 3), (2e7, 5e4, "int8", 2), (1e4, 4e6, "float32", 2), (1e4, 2e6, "int8", 1),
        (10, 100, "float32", 30), (3e6, 3e5, "float32", 5), (3e6, 3e5, "int8", 5), (1e8, 1e6, "int8", 1),
    ]):  # fmt: skip
        ops = [op(macs, mac_bytes, dtype, j) for j in range(n)]
        if i % 2:  # half the models also hold a compute-bound depthwise convolution
            ops.append(op(macs, mac_bytes / 10, dtype, n, kind="DEPTHWISE_CONV_2D"))
        suite.append({"name": f"m{i}", "ops": ops, "measured_ms": cost.predict_ms(ops, truth)})
    fitted = calibrate.fit(suite)
    for key, value in truth.items():
        assert fitted[key] == pytest.approx(value, rel=0.05), key
    check = calibrate.check(suite, fitted)
    assert check["within_tolerance"] == 1.0 and check["median_abs_error"] < 0.01
    assert set(check["models"]) == {f"m{i}" for i in range(8)}


def test_fit_is_not_pulled_off_by_a_model_the_roofline_cannot_describe():
    truth = {"peak_gmacs_fp32": 40.0, "peak_gmacs_int8": 30.0, "vector_efficiency": 0.35, "bandwidth_gbs": 50.0,
             "op_overhead_us": 0.15}  # fmt: skip
    shapes = [(2e7, 2e5, "float32"), (2e7, 5e4, "int8"), (1e5, 3e6, "float32"), (1e5, 8e5, "int8"),
              (5e5, 5e4, "float32"), (5e5, 1e4, "int8"), (1e3, 1e3, "float32"), (1e3, 1e3, "int8")]  # fmt: skip
    suite = []
    for i, (macs, mac_bytes, dtype) in enumerate(shapes):
        ops = [op(macs, mac_bytes, dtype, 0), op(macs / 20, mac_bytes / 4, dtype, 1, kind="DEPTHWISE_CONV_2D")]
        suite.append({"name": f"m{i}", "ops": ops, "measured_ms": cost.predict_ms(ops, truth)})
    # one model runs 6x slower than its operators say (as an int8 convolution with one input channel does on x86)
    suite.append({"name": "odd", "ops": [op(1e5, 1e4, "int8")], "measured_ms": 6 * cost.predict_ms([op(1e5, 1e4, "int8")], truth)})
    check = calibrate.check(suite, calibrate.fit(suite))
    assert all(abs(m["error"]) < 0.02 for name, m in check["models"].items() if name != "odd"), check["models"]
    assert check["models"]["odd"]["error"] < -0.8
    assert check["within_tolerance"] == pytest.approx(8 / 9, abs=1e-3)


def test_depthwise_ops_run_at_the_vector_efficiency():
    gemm = cost.op_seconds(op(1e7, 10), PROFILE)[0]
    depthwise = cost.op_seconds(op(1e7, 10, kind="DEPTHWISE_CONV_2D"), PROFILE)[0]
    assert depthwise - 2e-6 == pytest.approx((gemm - 2e-6) / PROFILE["vector_efficiency"])
