"""Training loops: full-batch node classification with model selection on validation accuracy,
and stratified k-fold cross-validation for graph classification."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.common.seeding import seed_everything
from pipelines.graph.models import build_graph_model, build_node_model, graph_inputs
from pipelines.graph.store import GraphArrays, NodeArrays

log = logging.getLogger(__name__)


class TimeLimitExceeded(Exception):
    """Training ran past its wall-clock time limit (the search rejects such trials)."""


@dataclass
class NodeTensors:
    """A node dataset as tensors: CSR features (and a dense copy for layers that need one)."""

    x: torch.Tensor  # sparse CSR
    x_dense: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_features: int
    num_classes: int

    def features(self, model: nn.Module) -> torch.Tensor:
        # CSR makes input dropout and the first matmul touch only the non-zeros of sparse features
        return self.x if getattr(model, "accepts_sparse", False) else self.x_dense


def node_tensors(a: NodeArrays) -> NodeTensors:
    n = a.num_nodes
    x = torch.sparse_csr_tensor(torch.from_numpy(a.x_indptr), torch.from_numpy(a.x_indices),
                                torch.from_numpy(a.x_data), (n, a.num_features))  # fmt: skip
    return NodeTensors(
        x=x, x_dense=x.to_dense(), edge_index=torch.from_numpy(a.edge_index), y=torch.from_numpy(a.y),
        train_mask=torch.from_numpy(a.train_mask), val_mask=torch.from_numpy(a.val_mask),
        test_mask=torch.from_numpy(a.test_mask), num_features=a.num_features, num_classes=a.num_classes,
    )  # fmt: skip


def accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if mask is not None:
        logits, y = logits[mask], y[mask]
    return float((logits.argmax(-1) == y).float().mean())


def adam(model: nn.Module, lr: float, weight_decay: float, first_layer_only: bool = False) -> torch.optim.Adam:
    """Adam with L2 weight decay on every layer, or (Kipf & Welling's GCN) on the first layer only."""
    if not first_layer_only:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    first = list((model.convs[0] if hasattr(model, "convs") else model.lins[0]).parameters())
    ids = {id(p) for p in first}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": first, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr)


@dataclass
class NodeRun:
    """One trained node model, restored to its best-validation epoch."""

    test_accuracy: float
    val_accuracy: float
    best_epoch: int
    logits: np.ndarray  # (N, C) at the selected epoch, eval mode
    state_dict: dict
    seconds: float
    history: dict = field(default_factory=dict)  # per-epoch loss, val_accuracy, val_loss


LossFn = Callable[[torch.Tensor], torch.Tensor]


def train_node_model(
    model: nn.Module,
    data: NodeTensors,
    cfg: Mapping[str, Any],
    seed: int,
    loss_fn: LossFn | None = None,
    deadline: float | None = None,
) -> NodeRun:
    """Full-batch training for `cfg['epochs']` epochs; the epoch with the best validation accuracy
    (ties: lower validation loss) is kept. `loss_fn(logits)` replaces cross-entropy on the
    training nodes (distillation); `deadline` (time.time()) raises TimeLimitExceeded.
    `fit_node_model` seeds before building the model; this seeds the dropout stream."""
    seed_everything(seed)
    x = data.features(model)
    conv = getattr(model, "conv", "mlp")
    edge_index, edge_weight = graph_inputs(conv, data.edge_index, len(data.y))
    opt = adam(model, cfg["lr"], cfg["weight_decay"], cfg.get("weight_decay_first_only", False))
    if loss_fn is None:
        def loss_fn(logits: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
    best = (-1.0, float("inf"))
    best_state, best_epoch, best_logits = None, 0, None
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": [], "val_loss": []}
    started = time.time()
    for epoch in range(cfg["epochs"]):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(x, edge_index, edge_weight))
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x, edge_index, edge_weight)
            val_acc = accuracy(logits, data.y, data.val_mask)
            val_loss = float(F.cross_entropy(logits[data.val_mask], data.y[data.val_mask]))
        for key, value in (("loss", float(loss.detach())), ("val_accuracy", val_acc), ("val_loss", val_loss)):
            history[key].append(value)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_epoch = (val_acc, val_loss), epoch + 1
            best_state, best_logits = copy.deepcopy(model.state_dict()), logits
        if deadline is not None and time.time() > deadline:
            raise TimeLimitExceeded(f"stopped after {epoch + 1} epochs ({time.time() - started:.1f} s)")
    model.load_state_dict(best_state)
    return NodeRun(
        test_accuracy=accuracy(best_logits, data.y, data.test_mask), val_accuracy=best[0], best_epoch=best_epoch,
        logits=best_logits.numpy(), state_dict=best_state, seconds=time.time() - started, history=history,
    )  # fmt: skip


def fit_node_model(
    cfg: Mapping[str, Any],
    data: NodeTensors,
    seed: int,
    loss_fn: LossFn | None = None,
    deadline: float | None = None,
) -> tuple[nn.Module, NodeRun]:
    """Seed, build and train one node model: the seed decides its initial weights as well as its
    dropout masks, so a run does not depend on what ran before it in the process."""
    seed_everything(seed)
    model = build_node_model(cfg, data.num_features, data.num_classes)
    return model, train_node_model(model, data, cfg, seed, loss_fn, deadline)


def graph_data_list(a: GraphArrays) -> list:
    """One PyG `Data` per graph."""
    from torch_geometric.data import Data

    out = []
    for g in range(a.num_graphs):
        x, ei = a.graph(g)
        out.append(Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(ei), y=torch.tensor([a.y[g]])))
    return out


@dataclass
class FoldRun:
    fold: int
    test_accuracy: float  # after the last epoch: no epoch is chosen on the test fold
    train_accuracy: float
    seconds: float
    state_dict: dict


def fit_graph_model(train: list, cfg: Mapping[str, Any], in_dim: int, num_classes: int, seed: int, epochs: int,
                    val: list | None = None) -> tuple[nn.Module, list[float]]:  # fmt: skip
    """Train a graph classifier on `train` for `epochs` epochs (GIN's recipe: Adam, the learning rate
    halved every `lr_step_epochs`); with `val`, return the model of the best-validation epoch (ties:
    the earlier) and the validation accuracy after every epoch, else the last epoch's model."""
    from torch_geometric.loader import DataLoader

    seed_everything(seed)
    model = build_graph_model(cfg, in_dim, num_classes)
    opt = adam(model, cfg["lr"], cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg["lr_step_epochs"] or epochs + 1, gamma=0.5)
    loader = DataLoader(train, batch_size=cfg["batch_size"], shuffle=True, generator=torch.Generator().manual_seed(seed))
    curve: list[float] = []
    best_state = None
    for _ in range(epochs):
        model.train()
        for batch in loader:
            opt.zero_grad()
            F.cross_entropy(model(batch.x, batch.edge_index, batch.batch), batch.y).backward()
            opt.step()
        sched.step()
        if val is not None:
            curve.append(graph_accuracy(model, val))
            if curve[-1] > max(curve[:-1], default=-1.0):
                best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), curve


def train_graph_fold(a: GraphArrays, graphs: list, cfg: Mapping[str, Any], fold: int, seed: int) -> FoldRun:
    """Train on every fold but `fold` for a fixed number of epochs, then test on `fold`."""
    train = [g for g, f in zip(graphs, a.folds, strict=True) if f != fold]
    test = [g for g, f in zip(graphs, a.folds, strict=True) if f == fold]
    started = time.time()
    model, _ = fit_graph_model(train, cfg, a.x.shape[1], a.num_classes, seed + fold, cfg["epochs"])
    return FoldRun(fold, graph_accuracy(model, test), graph_accuracy(model, train), time.time() - started,
                   copy.deepcopy(model.state_dict()))  # fmt: skip


@dataclass
class DeployedGraphModel:
    """The graph classifier that ships: its epoch chosen on the validation graphs, then retrained on
    the training and validation graphs for that many epochs, and tested on the test graphs."""

    model: nn.Module
    best_epoch: int
    val_accuracy: float
    val_curve: list[float]
    test_accuracy: float
    test_index: np.ndarray
    test_logits: np.ndarray
    seconds: float


def train_deployed_graph_model(a: GraphArrays, graphs: list, cfg: Mapping[str, Any], seed: int) -> DeployedGraphModel:
    """`GraphArrays.split()`'s train/val/test: pick the epoch on val, retrain on train + val, test."""
    train_m, val_m, test_m = a.split()
    pick = lambda m: [g for g, keep in zip(graphs, m, strict=True) if keep]  # noqa: E731
    started = time.time()
    _, curve = fit_graph_model(pick(train_m), cfg, a.x.shape[1], a.num_classes, seed, cfg["epochs"], val=pick(val_m))
    best_epoch = int(np.argmax(curve)) + 1
    model, _ = fit_graph_model(pick(train_m | val_m), cfg, a.x.shape[1], a.num_classes, seed, best_epoch)
    test = pick(test_m)
    logits = graph_logits(model, test)
    return DeployedGraphModel(
        model=model, best_epoch=best_epoch, val_accuracy=max(curve), val_curve=curve,
        test_accuracy=float((logits.argmax(-1) == a.y[test_m]).mean()), test_index=np.flatnonzero(test_m),
        test_logits=logits, seconds=time.time() - started,
    )  # fmt: skip


def graph_logits(model: nn.Module, graphs: list) -> np.ndarray:
    """Eval-mode logits of every graph, one row each, in order."""
    from torch_geometric.loader import DataLoader

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(b.x, b.edge_index, b.batch).numpy() for b in DataLoader(graphs, batch_size=256)])


def graph_accuracy(model: nn.Module, graphs: list) -> float:
    y = np.asarray([int(g.y) for g in graphs])
    return float((graph_logits(model, graphs).argmax(-1) == y).mean())
