"""The graph pipeline's deployable models rebuilt in tf-keras from their PyTorch weights, and
converted to TFLite: the GLNN student (an MLP over one node's features) and the graph classifier
(its message passing in dense form over a padded graph, `pipelines.graph.dense`).

TensorFlow only (through `pipelines.vision.tfk`): this module must never import torch. The
weights arrive as NumPy arrays: the student's in Keras layout (kernel: in x out), written by
gnn_distill; the graph classifier's as its PyTorch state dict, written by gnn_train.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common import io
from pipelines.common.errors import UserError
from pipelines.edge import evaluate
from pipelines.graph import dense
from pipelines.graph.store import GraphArrays, NodeArrays
from pipelines.vision import convert
from pipelines.vision.tfk import keras, tf

log = logging.getLogger("edgesmith.gnn_export")

BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default
EXPORTABLE_CONVS = ("gin", "gcn", "sage")


def build_mlp(weights: Mapping[str, np.ndarray]) -> keras.Model:
    """Dense + ReLU layers, logits out: the same function as the PyTorch `MLP` (dropout is training-only)."""
    n = sum(1 for k in weights if k.startswith("kernel_"))
    if n == 0:
        raise ValueError("no kernel_0 .. kernel_N arrays in the student weights")
    inputs = keras.Input((weights["kernel_0"].shape[0],), name="features")
    h = inputs
    for i in range(n):
        layer = keras.layers.Dense(weights[f"kernel_{i}"].shape[1], activation="relu" if i < n - 1 else None,
                                   name=f"dense_{i}")  # fmt: skip
        h = layer(h)
        layer.set_weights([weights[f"kernel_{i}"], weights[f"bias_{i}"]])
    return keras.Model(inputs, h, name="glnn_student")


def to_tflite(model: keras.Model, representative: Callable[[], Iterator[list[np.ndarray]]]) -> dict[str, bytes]:
    """{'fp32': ..., 'int8': ...}: the int8 file is full-integer (weights, activations, inputs, output),
    its ranges taken from the `representative` inputs."""
    return {"fp32": convert.to_tflite_fp32(model), "int8": convert.to_tflite_int8(model, representative)}


def samples(rows: Sequence[Mapping[str, np.ndarray]]) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """A converter's representative dataset: each row maps the model's input names to arrays (by
    name, since the converter's own input order need not be the model's)."""

    def gen() -> Iterator[dict[str, np.ndarray]]:
        for r in rows:
            yield {k: np.asarray(v, np.float32) for k, v in r.items()}

    return gen


# ---- the graph classifier ---------------------------------------------------------------------


def _fold_bn(kernel: np.ndarray, bias: np.ndarray, sd: Mapping[str, np.ndarray], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A Dense (kernel in x out) followed by an eval-mode BatchNorm `bn`, as one Dense."""
    scale = sd[f"{bn}.weight"] / np.sqrt(sd[f"{bn}.running_var"] + BN_EPS)
    return kernel * scale, (bias - sd[f"{bn}.running_mean"]) * scale + sd[f"{bn}.bias"]


def _linear(sd: Mapping[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel in x out, bias) of a torch Linear; a zero bias when it has none."""
    w = sd[f"{name}.weight"].T
    return w, sd.get(f"{name}.bias", np.zeros(w.shape[1], np.float32))


def _dense(h: tf.Tensor, kernel: np.ndarray, bias: np.ndarray, name: str, relu: bool = False) -> tf.Tensor:
    layer = keras.layers.Dense(kernel.shape[1], activation="relu" if relu else None, name=name)
    out = layer(h)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return out


class MatMul(keras.layers.Layer):
    """adjacency @ h per graph of the batch (a BATCH_MATMUL in TFLite)."""

    def call(self, adjacency: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        return tf.linalg.matmul(adjacency, h)


class GCNAdjacency(keras.layers.Layer):
    """D^-1/2 (A + I) D^-1/2, D the in-degree with the self-loop: PyG's gcn_norm in dense form."""

    def call(self, adjacency: tf.Tensor) -> tf.Tensor:
        a = adjacency + tf.eye(tf.shape(adjacency)[-1], dtype=adjacency.dtype)
        d = tf.math.rsqrt(tf.reduce_sum(a, axis=-1, keepdims=True))
        return a * d * tf.linalg.matrix_transpose(d)


class MeanAdjacency(keras.layers.Layer):
    """A with each row divided by its in-degree (at least 1): GraphSAGE's mean aggregation."""

    def call(self, adjacency: tf.Tensor) -> tf.Tensor:
        return adjacency / tf.maximum(tf.reduce_sum(adjacency, axis=-1, keepdims=True), 1.0)


class Pool(keras.layers.Layer):
    """The readout over real nodes: sum, mean or max of h * mask over the node axis (max assumes
    h >= 0, which holds after every layer's ReLU)."""

    def __init__(self, how: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.how = how

    def call(self, h: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        h = h * mask
        if self.how == "max":
            return tf.reduce_max(h, axis=1)
        total = tf.reduce_sum(h, axis=1)
        return total / tf.reduce_sum(mask, axis=1) if self.how == "mean" else total


def build_graph_classifier(cfg: Mapping, sd: Mapping[str, np.ndarray], in_dim: int, max_nodes: int) -> keras.Model:
    """`pipelines.graph.models.GraphGNN` (eval mode) in tf-keras over a padded dense graph: every
    BatchNorm folded into the Dense before it; dropout is training-only."""
    conv = cfg["conv"]
    if conv not in EXPORTABLE_CONVS:
        raise ValueError(f"graph classifiers with conv {conv!r} have no dense export; one of {', '.join(EXPORTABLE_CONVS)}")
    x = keras.Input((max_nodes, in_dim), name="x")
    adjacency = keras.Input((max_nodes, max_nodes), name="adjacency")
    mask = keras.Input((max_nodes, 1), name="mask")
    prop = {"gcn": GCNAdjacency(name="gcn_adjacency"), "sage": MeanAdjacency(name="mean_adjacency")}.get(conv)
    a = prop(adjacency) if prop is not None else adjacency
    h, hs = x, [x]
    for i in range(cfg["layers"]):
        c = f"convs.{i}"
        if conv == "gin":  # MLP((1 + eps) h + sum of neighbours): Linear, BN, ReLU, Linear, then the layer's BN
            eps = float(np.asarray(sd.get(f"{c}.eps", 0.0)).reshape(-1)[0])
            own = h if eps == 0.0 else h * (1.0 + eps)
            z = keras.layers.Add(name=f"gin_{i}_sum")([own, MatMul(name=f"gin_{i}_aggregate")(a, h)])
            k0, b0 = _fold_bn(*_linear(sd, f"{c}.nn.0"), sd, f"{c}.nn.1")
            z = _dense(z, k0, b0, f"gin_{i}_mlp_0", relu=True)
            h = _dense(z, *_fold_bn(*_linear(sd, f"{c}.nn.3"), sd, f"norms.{i}"), f"gin_{i}_mlp_1", relu=True)
        elif conv == "gcn":  # Â (h W) + b, then BN
            k, b = _fold_bn(sd[f"{c}.lin.weight"].T, sd[f"{c}.bias"], sd, f"norms.{i}")
            z = _dense(h, k, np.zeros_like(b), f"gcn_{i}_lin")
            h = keras.layers.ReLU(name=f"gcn_{i}_relu")(MatMul(name=f"gcn_{i}_aggregate")(a, z) + b.astype(np.float32))
        else:  # sage: lin_l(mean of neighbours) + lin_r(h), then BN
            kl, bl = _fold_bn(*_linear(sd, f"{c}.lin_l"), sd, f"norms.{i}")
            kr, _ = _fold_bn(*_linear(sd, f"{c}.lin_r"), sd, f"norms.{i}")
            mean = MatMul(name=f"sage_{i}_aggregate")(a, h)
            z = keras.layers.Add(name=f"sage_{i}_sum")([_dense(mean, kl, bl, f"sage_{i}_lin_l"),
                                                       _dense(h, kr, np.zeros_like(bl), f"sage_{i}_lin_r")])  # fmt: skip
            h = keras.layers.ReLU(name=f"sage_{i}_relu")(z)
        hs.append(h)
    used = hs if cfg["layer_readout"] else hs[-1:]
    logits = [_dense(Pool(cfg["readout"], name=f"pool_{j}")(v, mask), *_linear(sd, f"heads.{j}"), f"head_{j}")
              for j, v in enumerate(used)]  # fmt: skip
    out = keras.layers.Add(name="logits")(logits) if len(logits) > 1 else logits[0]
    return keras.Model([x, adjacency, mask], out, name=f"{conv}_graph_classifier")


# ---- export, checked against PyTorch in the TFLite runtime ------------------------------------


def check_fp32(name: str, keras_diff: float, tflite_diff: float, reference: np.ndarray, tolerance: float) -> None:
    """The fp32 files must compute what PyTorch computes: max |logit diff| within tolerance x max(1, max |logit|)."""
    limit = tolerance * max(1.0, float(np.abs(reference).max()))
    if max(keras_diff, tflite_diff) > limit:
        raise UserError(f"gnn_export: the fp32 export of {name} disagrees with PyTorch (max |logit diff| Keras "
                        f"{keras_diff:.3g}, TFLite {tflite_diff:.3g} > {limit:.3g}, gnn_export.fp32_tolerance "
                        f"{tolerance} x max(1, max |logit|))")  # fmt: skip


def _file_row(path: Path, out_name: str, variant: str, pred: np.ndarray, ref: np.ndarray, y: np.ndarray,
              blob: bytes) -> dict[str, Any]:  # fmt: skip
    torch_acc = float((ref.argmax(-1) == y).mean())
    acc = float((pred.argmax(-1) == y).mean())
    return {
        "file": f"{out_name}/{path.name}", "dtype": "float32" if variant == "fp32" else "int8",
        "accuracy": acc, "torch_accuracy": torch_acc, "accuracy_drop_points": round(100 * (torch_acc - acc), 3),
        "max_abs_logit_diff": round(float(np.abs(pred - ref).max()), 6),
        "argmax_agreement": float((pred.argmax(-1) == ref.argmax(-1)).mean()),
        "size_bytes": len(blob), "tensor_dtypes": evaluate.tensor_dtypes(path),
    }  # fmt: skip


def export_student(arrays: NodeArrays, student_dir: Path, settings: Mapping[str, Any], seed: int, out: Path,
                   out_name: str) -> tuple[dict[str, dict], dict[str, Any]]:  # fmt: skip
    """student_fp32/int8.tflite from gnn_distill's weights, each checked on the test nodes; returns
    (file rows, figures of the export as a whole)."""
    weights = dict(np.load(student_dir / "student.npz"))
    ref = dict(np.load(student_dir / "reference.npz"))
    x_test, y_test = arrays.dense_features(ref["test_index"]), ref["y"]
    model = build_mlp(weights)
    keras_diff = float(np.abs(model.predict(x_test, verbose=0) - ref["logits"]).max())
    # calibrate on training nodes first (what a deployment has seen), then a seeded sample of the rest
    rng = np.random.default_rng(seed)
    order = np.concatenate([np.flatnonzero(arrays.train_mask), rng.permutation(np.flatnonzero(~arrays.train_mask))])
    rows = arrays.dense_features(order[: settings["representative_samples"]])
    files = {}
    for variant, blob in to_tflite(model, samples([{"features": r[None]} for r in rows])).items():
        path = out / f"student_{variant}.tflite"
        path.write_bytes(blob)
        pred = evaluate.predict(path, x_test, batch_size=len(x_test))
        files[f"student_{variant}"] = _file_row(path, out_name, variant, pred, ref["logits"], y_test, blob)
        log.info("gnn_export: %s accuracy %.4f (PyTorch %.4f), max |logit diff| %.2g, %d bytes", path.name,
                 files[f"student_{variant}"]["accuracy"], files[f"student_{variant}"]["torch_accuracy"],
                 files[f"student_{variant}"]["max_abs_logit_diff"], len(blob))  # fmt: skip
    check_fp32("the GLNN student", keras_diff, files["student_fp32"]["max_abs_logit_diff"], ref["logits"],
               settings["fp32_tolerance"])  # fmt: skip
    figures = {"dataset": arrays.name, "test_count": int(len(y_test)), "keras_max_abs_logit_diff": round(keras_diff, 8),
               "params": int(model.count_params()), "example": x_test[:2].astype(np.float32).tolist()}  # fmt: skip
    return files, figures


def export_graph_classifiers(a: GraphArrays, models_dir: Path, settings: Mapping[str, Any], out: Path,
                             out_name: str) -> tuple[dict[str, dict], dict[str, Any], dict[str, list]]:  # fmt: skip
    """<name>_fp32/int8.tflite for every graph classifier gnn_train deployed, each checked on the
    test graphs against PyTorch's logits; returns (file rows, per-classifier figures, the first
    test graph as the files' input example)."""
    configs = io.read_json(models_dir / "configs.json")
    reference = dict(np.load(models_dir / "graph_reference.npz"))
    test_index = reference["test_index"]
    y_test = a.y[test_index]
    train_m, _, _ = a.split()
    calibration = [dense.padded(a, int(g), a.max_nodes) for g in np.flatnonzero(train_m)[: settings["representative_samples"]]]
    files, figures = {}, {}
    for name, cfg in configs.items():
        if cfg["task"] != "graph":
            continue
        if cfg["conv"] not in EXPORTABLE_CONVS:
            figures[name] = {"skipped": f"conv {cfg['conv']!r} has no dense TFLite export (one of {', '.join(EXPORTABLE_CONVS)})"}
            log.warning("gnn_export: %s: %s", name, figures[name]["skipped"])
            continue
        ref = reference[f"{name}_logits"]
        model = build_graph_classifier(cfg, dict(np.load(models_dir / f"{name}_weights.npz")), cfg["in_dim"], a.max_nodes)
        inputs = [dense.padded(a, int(g), a.max_nodes) for g in test_index]
        keras_out = np.concatenate([model.predict([v[k] for k in dense.INPUTS], verbose=0) for v in inputs])
        keras_diff = float(np.abs(keras_out - ref).max())
        for variant, blob in to_tflite(model, samples(calibration)).items():
            path = out / f"{name}_{variant}.tflite"
            path.write_bytes(blob)
            pred = dense.predict(path, a, test_index)
            files[f"{name}_{variant}"] = {**_file_row(path, out_name, variant, pred, ref, y_test, blob), "task": "graph",
                                          "conv": cfg["conv"]}  # fmt: skip
            log.info("gnn_export: %s accuracy %.4f on %d test graphs (PyTorch %.4f), max |logit diff| %.2g, %d bytes",
                     path.name, files[f"{name}_{variant}"]["accuracy"], len(test_index),
                     files[f"{name}_{variant}"]["torch_accuracy"], files[f"{name}_{variant}"]["max_abs_logit_diff"],
                     len(blob))  # fmt: skip
        check_fp32(name, keras_diff, files[f"{name}_fp32"]["max_abs_logit_diff"], ref, settings["fp32_tolerance"])
        figures[name] = {"dataset": a.name, "test_graphs": int(len(test_index)), "max_nodes": a.max_nodes,
                         "keras_max_abs_logit_diff": round(keras_diff, 8), "params": int(model.count_params()),
                         "form": "dense: x (max_nodes x F), adjacency (max_nodes x max_nodes), mask (max_nodes x 1), "
                                 "padded; BatchNorm folded"}  # fmt: skip
    return files, figures, {k: v.tolist() for k, v in dense.padded(a, int(test_index[0]), a.max_nodes).items()}
