"""GLNN (Zhang et al., 2022): distil a GNN teacher into an MLP that needs no neighbours at inference.

Two settings, answering different questions:
- `transductive`: the teacher's soft labels cover every node, test nodes included (the nodes
  exist when the student is trained; only their labels are unknown);
- `unseen`: no soft labels on the test nodes, so the student meets them as new nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.graph.models import MLP
from pipelines.graph.train import NodeRun, NodeTensors, fit_node_model

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
