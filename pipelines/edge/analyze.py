"""Static cost of a .tflite file, read from its flatbuffer: MACs, parameters, memory traffic, peak activations.

Nothing is run: the operators of the primary subgraph are read in execution order (the order
the interpreter invokes them) with the shapes and dtypes stored in the file. Batch is whatever
the file stores (1 for converted Keras models); -1 or 0 dimensions count as 1.

Terms used throughout:
- a *constant* tensor has data in the file (a non-empty buffer); every other tensor is an
  activation, written by one operator (or given as a model input) and read by later ones;
- a constant is a *weight* unless it is an integer (int32/int64) tensor without quantization
  parameters: those are shape, axis, padding or index operands (RESHAPE's new shape, MEAN's
  axes, ...). They are not parameters of the model, and are left out of params and byte counts.
  Quantized int32 biases carry a scale, so they stay weights.

Totals count each weight tensor once even when several operators read it: the converter shares
identical constants between layers (all-zero biases, for one), so per-operator params can add
up to more than the total. Memory-access totals are per operator, as every read is a real read.

NumPy, the flatbuffer schema module shipped with the TFLite runtime, and the standard library
only: this runs on a device.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.common.errors import ModelFileError
from pipelines.edge import runtime

log = logging.getLogger(__name__)

# Bits per stored element; sub-byte types are packed in the file and in the runtime.
_BITS = {
    "float32": 32, "float16": 16, "bfloat16": 16, "float64": 64, "int32": 32, "uint32": 32, "int64": 64,
    "uint64": 64, "int16": 16, "uint16": 16, "int8": 8, "uint8": 8, "bool": 8, "complex64": 64,
    "complex128": 128, "int4": 4, "uint4": 4, "int2": 2, "float8_e4m3fn": 8, "float8_e5m2": 8,
}  # fmt: skip
_OPERAND_DTYPES = ("int32", "int64")
TENSOR_KEYS = ("index", "name", "shape", "dtype", "constant", "bytes", "scale", "zero_point", "quantized_dimension")

ELEMENTWISE = frozenset({"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"})
ACTIVATIONS = frozenset({
    "LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH", "SOFTMAX",
    "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "PRELU", "ELU", "GELU", "LOG_SOFTMAX",
})  # fmt: skip
REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"})
POOLS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
# Zero MACs by rule: they move, copy, reorder or requantize data and multiply nothing. Their
# memory traffic still counts.
DATA_MOVEMENT = frozenset({
    "QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PACK",
    "UNPACK", "SPLIT", "SPLIT_V", "SLICE", "STRIDED_SLICE", "PAD", "PADV2", "MIRROR_PAD", "GATHER", "GATHER_ND",
    "TILE", "BROADCAST_TO", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND",
    "RESIZE_NEAREST_NEIGHBOR", "SHAPE", "CAST", "FILL", "ZEROS_LIKE", "ONES_LIKE", "REVERSE_V2",
})  # fmt: skip


def op_macs(
    op: str,
    inputs: Sequence[Sequence[int] | None],
    outputs: Sequence[Sequence[int]],
    options: dict[str, int] | None = None,
) -> int | None:
    """Multiply-accumulates of one operator from its input/output shapes; None when no rule covers it.

    Shapes are as stored, with -1/0 dimensions counted as 1; `inputs` follows the operator's
    input order (None for an absent optional input). The rules:
    - CONV_2D: out_elems * kh * kw * cin_per_group (filter [cout, kh, kw, cin/groups]);
      CONV_3D: out_elems * kd * kh * kw * cin (filter [kd, kh, kw, cin, cout]);
    - DEPTHWISE_CONV_2D: out_elems * kh * kw (each output reads one channel);
    - FULLY_CONNECTED: out_elems * in_units = batch * out_units * in_units (weights [out, in]);
    - BATCH_MATMUL: out_elems * K, K the contracted dim of the first operand (adj_x honoured);
    - TRANSPOSE_CONV: in_elems * kh * kw * cout (every input element is scattered into a
      kh x kw x cout window; products that land in cropped padding are counted too);
    - AVERAGE/MAX/L2_POOL_2D: out_elems * fh * fw (one add or compare per window element);
    - MEAN, SUM, REDUCE_MAX/MIN/PROD: in_elems (one accumulate per element read);
    - ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM: out_elems;
    - activations (LOGISTIC, TANH, RELU, RELU6, HARD_SWISH, SOFTMAX, LEAKY_RELU, PRELU, ELU,
      GELU, LOG_SOFTMAX, RELU_N1_TO_1, RELU_0_TO_1): out_elems;
    - data movement (QUANTIZE, DEQUANTIZE, RESHAPE, TRANSPOSE, CONCATENATION, PAD, SLICE,
      GATHER, CAST, ...; see DATA_MOVEMENT): 0.
    Bias additions and fused activations (e.g. CONV_2D with fused RELU) add nothing: the bias
    initialises the accumulator and the clamp is part of requantization.
    """
    options = options or {}
    out = _elems(outputs[0]) if outputs else 0

    def shape(i: int) -> list[int]:
        if i >= len(inputs) or inputs[i] is None:
            raise ValueError(f"{op}: input {i} missing")
        return [max(int(d), 1) for d in inputs[i]]

    if op == "CONV_2D":
        f = shape(1)
        return out * f[1] * f[2] * f[3]
    if op == "CONV_3D":
        f = shape(1)
        return out * f[0] * f[1] * f[2] * f[3]
    if op == "DEPTHWISE_CONV_2D":
        f = shape(1)
        return out * f[1] * f[2]
    if op == "FULLY_CONNECTED":
        return out * shape(1)[-1]
    if op == "BATCH_MATMUL":
        a = shape(0)
        k = a[-2] if options.get("adj_x") else a[-1]
        return out * k
    if op == "TRANSPOSE_CONV":
        f = shape(1)
        return _elems(shape(2)) * f[0] * f[1] * f[2]
    if op in POOLS:
        return out * max(options.get("filter_height", 1), 1) * max(options.get("filter_width", 1), 1)
    if op in REDUCTIONS:
        return _elems(shape(0))
    if op in ELEMENTWISE or op in ACTIVATIONS:
        return out
    if op in DATA_MOVEMENT:
        return 0
    return None


def analyze(path: str | Path) -> dict[str, Any]:
    """Per-operator and total MACs, params, memory-access bytes and peak activation bytes of a .tflite file."""
    path = runtime.check_tflite(path)
    schema = runtime.schema_module()
    buf = path.read_bytes()
    try:
        tensors, ops, io = _read(schema, buf)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        # A truncated or corrupt flatbuffer fails as an out-of-range read somewhere inside the schema code.
        raise ModelFileError(f"{path}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None

    rows, uncounted = [], set()
    weights: dict[int, tuple[int, int]] = {}  # tensor index -> (elements, stored bytes), each tensor once
    for i, (name, ins, outs, options) in enumerate(ops):
        present = [t for t in ins if t >= 0]
        consts = _unique(t for t in present if tensors[t]["constant"])
        acts_in = _unique(t for t in present if not tensors[t]["constant"])
        wts = [t for t in consts if not tensors[t]["operand"]]
        for t in wts:
            weights[t] = (tensors[t]["elements"], tensors[t]["bytes"])
        try:
            macs = op_macs(name, [tensors[t]["shape"] if t >= 0 else None for t in ins],
                           [tensors[t]["shape"] for t in outs], options)  # fmt: skip
        except (ValueError, IndexError) as exc:
            raise ModelFileError(f"{path}: operator {i} ({name}) has unexpected inputs ({exc})") from None
        if macs is None:
            uncounted.add(name)
            macs = 0
        first = acts_in[0] if acts_in else (outs[0] if outs else None)
        weight_bytes = sum(tensors[t]["bytes"] for t in wts)
        input_bytes = sum(tensors[t]["bytes"] for t in acts_in)
        output_bytes = sum(tensors[t]["bytes"] for t in _unique(outs))
        rows.append({
            "index": i,
            "op": name,
            "dtype": tensors[first]["dtype"] if first is not None else "",
            "inputs": list(ins),
            "outputs": list(outs),
            "output_shape": list(tensors[outs[0]]["shape"]) if outs else [],
            "macs": int(macs),
            "params": sum(tensors[t]["elements"] for t in wts),
            "weight_bytes": weight_bytes,
            "input_bytes": input_bytes,
            "output_bytes": output_bytes,
            "memory_access_bytes": weight_bytes + input_bytes + output_bytes,
        })  # fmt: skip
    live = _live_bytes(tensors, ops, io)
    for row, b in zip(rows, live, strict=True):
        row["live_activation_bytes"] = b
    if io["subgraphs"] > 1:
        log.info("%s: %d subgraphs; only the primary one is analysed", path.name, io["subgraphs"])
    if uncounted:
        log.warning("%s: no MAC rule for %s; counted as 0 MACs", path.name, ", ".join(sorted(uncounted)))

    totals = {
        "file": str(path),
        "size_bytes": len(buf),
        "ops": len(rows),
        "macs": sum(r["macs"] for r in rows),
        "params": sum(e for e, _ in weights.values()),
        "weight_bytes": sum(b for _, b in weights.values()),
        "activation_bytes_read": sum(r["input_bytes"] for r in rows),
        "activation_bytes_written": sum(r["output_bytes"] for r in rows),
        "memory_access_bytes": sum(r["memory_access_bytes"] for r in rows),
        "peak_activation_bytes": max(live, default=_io_bytes(tensors, io)),
        "integer_only": integer_only(tensors, ops, io),
    }
    log.info("analyze %s: %d ops, %d MACs, %d params, %d weight bytes, peak activations %d bytes",
             path.name, totals["ops"], totals["macs"], totals["params"], totals["weight_bytes"],
             totals["peak_activation_bytes"])  # fmt: skip
    return {
        "file": str(path),
        "size_bytes": len(buf),
        "subgraphs": io["subgraphs"],
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "ops": rows,
        "totals": totals,
        "uncounted_ops": sorted(uncounted),
        "tensors": [{k: t[k] for k in TENSOR_KEYS} for t in tensors],
    }


def format_table(result: dict[str, Any]) -> str:
    """A human-readable table of `analyze()`'s result: one row per operator, then the totals."""
    t = result["totals"]
    total_macs = t["macs"] or 1
    header = ("#", "op", "dtype", "output shape", "MACs", "params", "mem bytes", "MAC %")
    rows = [
        (str(r["index"]), r["op"], r["dtype"], "x".join(str(d) for d in r["output_shape"]) or "-",
         f"{r['macs']:,}", f"{r['params']:,}", f"{r['memory_access_bytes']:,}",
         f"{100 * r['macs'] / total_macs:.1f}")
        for r in result["ops"]
    ]  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    left = {1, 2, 3}  # text columns; numbers are right-aligned

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    out.append(
        f"total: {t['ops']} ops, {t['macs']:,} MACs, {t['params']:,} params ({t['weight_bytes']:,} weight bytes), "
        f"memory access {t['memory_access_bytes']:,} bytes, peak activations {t['peak_activation_bytes']:,} bytes, "
        f"file {t['size_bytes']:,} bytes"
    )
    return "\n".join(out)


def _elems(shape: Sequence[int]) -> int:
    return math.prod(max(int(d), 1) for d in shape)


def _unique(items: Any) -> list[int]:
    return list(dict.fromkeys(items))


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _read(schema: Any, buf: bytes) -> tuple[list[dict], list[tuple], dict]:
    """Tensors, operators (name, inputs, outputs, options) and model inputs/outputs of subgraph 0."""
    model = schema.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("no subgraph")
    graph = model.Subgraphs(0)
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = {v: name.lower() for v, name in _enum_names(schema.TensorType).items()}
    n_buffers = model.BuffersLength()
    external = {}
    if hasattr(model, "ExternalBuffersLength"):  # newer schemas: weights stored outside the flatbuffer
        for j in range(model.ExternalBuffersLength()):
            e = model.ExternalBuffers(j)
            external[e.Id()] = e.Length()

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        dtype = type_names.get(t.Type(), f"type_{t.Type()}")
        stored = 0
        b = t.Buffer()
        if b >= n_buffers:
            raise IndexError(f"tensor {i} names buffer {b} of {n_buffers}")
        if b > 0:
            buffer = model.Buffers(b)
            # offset > 1 means the data is appended after the flatbuffer (models over 2 GB).
            stored = buffer.DataLength() or (buffer.Size() if buffer.Offset() > 1 else 0)
        ext = t.ExternalBuffer() if hasattr(t, "ExternalBuffer") else 0
        if not stored and ext:
            stored = int(external.get(ext, 0))
        constant = stored > 0 and not t.IsVariable()
        elements = _elems(shape)
        q = t.Quantization()
        scale = [float(s) for s in q.ScaleAsNumpy()] if q is not None and q.ScaleLength() else []
        zero_point = [int(z) for z in q.ZeroPointAsNumpy()] if q is not None and q.ZeroPointLength() else []
        if dtype not in _BITS and dtype != "string":
            log.debug("tensor %d: dtype %s has no known size; counted as 0 bytes", i, dtype)
        tensors.append({
            "index": i,
            "name": (t.Name() or b"").decode("utf-8", "replace"),
            "shape": shape,
            "dtype": dtype,
            "constant": constant,
            "operand": constant and dtype in _OPERAND_DTYPES and not scale,
            "elements": elements,
            "bytes": int(stored) if constant else math.ceil(elements * _BITS.get(dtype, 0) / 8),
            "scale": scale,
            "zero_point": zero_point,
            "quantized_dimension": int(q.QuantizedDimension()) if q is not None and scale else 0,
        })  # fmt: skip

    def indices(values: Any, n: int, what: str) -> list[int]:
        out = [int(v) for v in values] if n else []
        for v in out:
            if v < -1 or v >= len(tensors):
                raise IndexError(f"{what} names tensor {v} of {len(tensors)}")
        return out

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        k = op.OpcodeIndex()
        if k >= model.OperatorCodesLength():
            raise IndexError(f"operator {i} names opcode {k} of {model.OperatorCodesLength()}")
        code = model.OperatorCodes(k)
        # builtin_code is the real field; deprecated_builtin_code (int8) holds it in files from
        # before opcode 127, and is clamped to 127 in newer ones: the larger of the two is the op.
        value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(value, f"BUILTIN_{value}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode('utf-8', 'replace')}"
        ins = indices(op.InputsAsNumpy(), op.InputsLength(), f"operator {i}")
        outs = [t for t in indices(op.OutputsAsNumpy(), op.OutputsLength(), f"operator {i}") if t >= 0]
        ops.append((name, ins, outs, _options(schema, op, name)))
    io = {
        "inputs": [t for t in indices(graph.InputsAsNumpy(), graph.InputsLength(), "subgraph inputs") if t >= 0],
        "outputs": [t for t in indices(graph.OutputsAsNumpy(), graph.OutputsLength(), "subgraph outputs") if t >= 0],
        "subgraphs": model.SubgraphsLength(),
    }
    return tensors, ops, io


def _options(schema: Any, op: Any, name: str) -> dict[str, int]:
    """The few builtin options the MAC rules need: pool window size and BATCH_MATMUL's adjoint flags."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if name in POOLS and op.BuiltinOptionsType() == schema.BuiltinOptions.Pool2DOptions:
        o = schema.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"filter_height": o.FilterHeight(), "filter_width": o.FilterWidth()}
    if name == "BATCH_MATMUL" and op.BuiltinOptionsType() == schema.BuiltinOptions.BatchMatMulOptions:
        o = schema.BatchMatMulOptions()
        o.Init(table.Bytes, table.Pos)
        return {"adj_x": int(o.AdjX()), "adj_y": int(o.AdjY())}
    return {}


def _live_bytes(tensors: list[dict], ops: list[tuple], io: dict) -> list[int]:
    """Bytes of activations live while each operator runs, from first write (or model input) to last read."""
    n = len(ops)
    start: dict[int, int] = {t: 0 for t in io["inputs"]}
    end: dict[int, int] = {}
    for i, (_, ins, outs, _) in enumerate(ops):
        for t in outs:
            start.setdefault(t, i)
            end[t] = max(end.get(t, i), i)
        for t in ins:
            if t >= 0 and not tensors[t]["constant"]:
                start.setdefault(t, 0)  # read but never written (e.g. a variable): live from the start
                end[t] = i
    for t in io["outputs"]:
        start.setdefault(t, 0)
        end[t] = n - 1
    delta = [0] * (n + 1)
    for t, s in start.items():
        if tensors[t]["constant"] or n == 0:
            continue
        e = max(end.get(t, s), s)
        delta[s] += tensors[t]["bytes"]
        delta[e + 1] -= tensors[t]["bytes"]
    live, running = [], 0
    for i in range(n):
        running += delta[i]
        live.append(running)
    return live


INTEGER_DTYPES = frozenset({"int8", "uint8", "int16", "int32", "int64", "bool"})


def integer_only(tensors: list[dict], ops: list[tuple], io: dict) -> bool:
    """True when the model's inputs, outputs and every tensor an operator reads or writes at run time
    are integers: what an int8-only accelerator can run whole (no float op, no (de)quantize at the edges)."""
    live = {t for _, ins, outs, _ in ops for t in (*ins, *outs) if t >= 0 and not tensors[t]["constant"]}
    live |= {*io["inputs"], *io["outputs"]}
    return all(tensors[t]["dtype"] in INTEGER_DTYPES for t in live)


def _io_bytes(tensors: list[dict], io: dict) -> int:
    return sum(tensors[t]["bytes"] for t in _unique([*io["inputs"], *io["outputs"]]))
