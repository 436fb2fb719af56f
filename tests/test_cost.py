"""The roofline cost model and the host calibration fit, on hand-made operator lists."""

from __future__ import annotations

import pytest

from pipelines.edge import calibrate, cost

PROFILE = {"peak_gmacs_fp32": 10.0, "peak_gmacs_int8": 40.0, "vector_efficiency": 0.5, "bandwidth_gbs": 5.0, "op_overhead_us": 2.0}


def op(macs, mac_bytes, dtype="float32", index=0, kind="CONV_2D", output_shape=None):
    row = {"index": index, "op": kind, "dtype": dtype, "macs": macs, "memory_access_bytes": mac_bytes}
    if output_shape:
        row["output_shape"] = output_shape
    return row


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


def test_a_shallow_gemm_is_charged_as_deep_as_the_profiles_floor():
    # 3x3 conv from one input channel to 16 at 28x28: 12,544 outputs, depth 9
    shallow = op(28 * 28 * 16 * 9, 10, "int8", output_shape=[1, 28, 28, 16])
    assert cost.reduction_depth(shallow) == 9
    assert cost.reduction_depth(op(100, 10, kind="DEPTHWISE_CONV_2D", output_shape=[1, 10])) is None
    assert cost.reduction_depth(op(100, 10)) is None  # no output shape: no rule
    base = cost.op_seconds(shallow, PROFILE)[0] - 2e-6
    floored = {**PROFILE, "min_depth_int8": 72.0, "min_depth_fp32": 500.0}
    assert cost.op_seconds(shallow, floored)[0] - 2e-6 == pytest.approx(base * 8)  # as if 72 deep, not 9
    deep = op(28 * 28 * 16 * 288, 10, "int8", output_shape=[1, 28, 28, 16])  # depth 288: above the floor
    assert cost.op_seconds(deep, floored) == cost.op_seconds(deep, PROFILE)


def test_fit_finds_the_depth_floor_of_shallow_int8_convolutions():
    truth = {**PROFILE, "min_depth_fp32": 1.0, "min_depth_int8": 60.0}
    suite = []
    for i, (cin, dtype) in enumerate([(1, "int8"), (1, "float32"), (4, "int8"), (4, "float32"), (16, "int8"),
                                      (16, "float32"), (64, "int8"), (64, "float32"), (128, "int8")]):  # fmt: skip
        outputs = [1, 28, 28, 16]
        ops = [op(28 * 28 * 16 * 9 * cin, 28 * 28 * (cin + 16), dtype, 0, output_shape=outputs),
               op(28 * 28 * 16 * 9, 28 * 28 * 32, dtype, 1, kind="DEPTHWISE_CONV_2D", output_shape=outputs)]
        suite.append({"name": f"m{i}", "ops": ops, "measured_ms": cost.predict_ms(ops, truth)})
    fitted = calibrate.fit(suite)
    assert fitted["min_depth_int8"] == pytest.approx(60.0, rel=0.05)
    assert fitted["min_depth_fp32"] <= 9.0  # no fp32 model is slowed: any floor at or below depth 9 fits
    assert calibrate.check(suite, fitted)["median_abs_error"] < 0.01
