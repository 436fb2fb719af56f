"""GLNN (Zhang et al., 2022): distil a GNN teacher into an MLP that needs no neighbours at inference.

Two settings, answering different questions:
- `transductive`: the teacher's soft labels cover every node, test nodes included (the nodes
  exist when the student is trained; only their labels are unknown);
- `unseen`: no soft labels on the test nodes, so the student meets them as new nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.common.errors import UserError
from pipelines.common.stats import mean_std
from pipelines.graph.models import MLP
from pipelines.graph.train import NodeRun, NodeTensors, fit_node_model

log = logging.getLogger("edgesmith.gnn_distill")
SETTINGS = ("transductive", "unseen")


def glnn_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    label_mask: torch.Tensor,
    soft_mask: torch.Tensor,
    label_weight: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """label_weight * CE(true labels on `label_mask`) + (1 - label_weight) * KL(teacher || student)
    on `soft_mask`, both at temperature T; KL is scaled by T^2 so its gradients keep their size."""
    ce = F.cross_entropy(student_logits[label_mask], y[label_mask])
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits[soft_mask] / t, -1), F.softmax(teacher_logits[soft_mask] / t, -1),
                  reduction="batchmean") * t * t  # fmt: skip
    return label_weight * ce + (1.0 - label_weight) * kl


def soft_label_mask(data: NodeTensors, setting: str) -> torch.Tensor:
    if setting == "transductive":
        return torch.ones_like(data.test_mask)
    if setting == "unseen":
        return ~data.test_mask
    raise ValueError(f"unknown setting {setting!r}; one of {', '.join(SETTINGS)}")


def train_student(
    data: NodeTensors, teacher_logits: np.ndarray, cfg: Mapping[str, Any], seed: int, setting: str
) -> tuple[MLP, NodeRun]:
    """An MLP student trained on the teacher's soft labels (and the training labels), selected on validation accuracy."""
    teacher = torch.from_numpy(np.asarray(teacher_logits, np.float32))
    soft = soft_label_mask(data, setting)

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return glnn_loss(logits, teacher, data.y, data.train_mask, soft, cfg["label_weight"], cfg["temperature"])

    student, run = fit_node_model({**cfg, "conv": "mlp", "weight_decay_first_only": False}, data, seed, loss_fn=loss)
    return student, run


def mlp_weights(model: MLP) -> dict[str, np.ndarray]:
    """The student's weights as NumPy arrays, Keras layout (kernel: in x out), for the TensorFlow export."""
    out = {}
    for i, lin in enumerate(model.lins):
        out[f"kernel_{i}"] = lin.weight.detach().numpy().T.copy()
        out[f"bias_{i}"] = lin.bias.detach().numpy().copy()
    return out


def pick_teacher(wanted: str, configs: Mapping[str, Mapping], logits: Mapping[str, np.ndarray], y: np.ndarray,
                 val_mask: np.ndarray) -> str:  # fmt: skip
    """The teacher's name: as given, or 'best' = the GNN with the highest mean validation accuracy."""
    gnns = [n for n, c in configs.items() if c["task"] == "node" and c["conv"] != "mlp"]
    if wanted != "best":
        if wanted not in gnns:
            raise UserError(f"gnn_distill.teacher: {wanted!r} is not a trained GNN; one of best, {', '.join(gnns)}")
        return wanted
    if not gnns:
        raise UserError("gnn_distill.teacher: best: gnn_train trained no GNN (only MLPs)")

    def val(name: str) -> float:
        return float((logits[name].argmax(-1)[:, val_mask] == y[val_mask]).mean())

    return max(gnns, key=val)


def accuracy_on_test_nodes(logits: np.ndarray, y: np.ndarray, test_mask: np.ndarray) -> float:
    """Accuracy of one seed's logits on the test nodes."""
    return float((logits.argmax(-1)[test_mask] == y[test_mask]).mean())


def students_per_setting(data: NodeTensors, teacher_logits: np.ndarray, cfg: Mapping[str, Any], seeds: Sequence[int],
                         teacher: str, y: np.ndarray, test_mask: np.ndarray) -> tuple[dict[str, dict], tuple[MLP, NodeRun]]:  # fmt: skip
    """One student per seed (from that seed's teacher logits) in each of `SETTINGS`; returns each
    setting's accuracy summary (`student_<setting>`) and the model and run of the first seed's
    transductive student, the one exported."""
    results, exported = {}, None
    for setting in SETTINGS:
        runs = []
        for i, s in enumerate(seeds):
            student, run = train_student(data, teacher_logits[i], cfg, s, setting)
            runs.append(run)
            log.info("gnn_distill: %s student, teacher %s seed %d: test %.4f (teacher %.4f)", setting, teacher, s,
                     run.test_accuracy, accuracy_on_test_nodes(teacher_logits[i], y, test_mask))  # fmt: skip
            if setting == "transductive" and i == 0:
                exported = (student, run)
        acc, std = mean_std([r.test_accuracy for r in runs])
        results[f"student_{setting}"] = {"accuracy": acc, "accuracy_std": std,
                                         "accuracies": [round(r.test_accuracy, 5) for r in runs]}  # fmt: skip
    return results, exported
