"""The one TFLite runtime loader (ai_edge_litert, then tflite_runtime, then tf.lite), and how values
enter and leave a quantized tensor."""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pipelines.common import quiet
from pipelines.common.errors import ModelFileError

TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite file


@functools.cache
def interpreter_class() -> tuple[type, str]:
    """(Interpreter class, 'package version') of the first runtime that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {_version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {_version('tflite-runtime')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, f"tensorflow {tf.__version__} (tf.lite)"
    except ImportError:
        raise ModelFileError(
            "no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


@functools.cache
def schema_module() -> ModuleType:
    """The TFLite flatbuffer schema module (`schema_py_generated`): ai_edge_litert's, else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated

        return schema_py_generated
    except ImportError:
        pass
    try:
        # Last resort only: importing it loads all of TensorFlow, which a device does not have.
        from tensorflow.lite.python import schema_py_generated

        return schema_py_generated
    except ImportError:
        raise ModelFileError(
            "no TFLite flatbuffer schema found: pip install ai-edge-litert (it ships schema_py_generated)"
        ) from None


def runtime_name() -> str:
    return interpreter_class()[1]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def check_tflite(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_MAGIC:
        raise ModelFileError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    return path


def load(path: str | Path, threads: int = 1, **kwargs: Any):
    """An allocated interpreter for a .tflite file with a fixed number of threads."""
    path = check_tflite(path)
    cls, _ = interpreter_class()
    try:
        with quiet.native_stderr():  # the runtime's "Created TensorFlow Lite XNNPACK delegate" line
            interpreter = cls(model_path=str(path), num_threads=threads, **kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the TFLite runtime cannot load it ({str(exc).splitlines()[0]})") from None
    return interpreter


def inputs_by_name(interpreter: Any) -> dict[str, dict]:
    """The interpreter's input details keyed by the model's own input names (the converter calls
    them `serving_default_<name>:0`)."""
    return {d["name"].split(":")[0].removeprefix("serving_default_"): d for d in interpreter.get_input_details()}


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float values as the input tensor `detail` takes them: its integer type with its scale and zero
    point, or its float type."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor's values as float32."""
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale
