"""Small GNNs from PyG layers (GCNConv, GATConv, SAGEConv, GINConv) and the no-graph MLP.

Node-level models share one signature, `forward(x, edge_index, edge_weight=None)`, so training,
distillation and the per-node benchmark treat them alike; the MLP ignores the graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, SAGEConv, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.utils import to_torch_csr_tensor

CONVS = ("gcn", "gat", "sage", "gin")
READOUTS = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}

# torch warns that CSR tensors are beta on every construction; CSR is what makes feature dropout
# and the first matmul cheap here, and PyG's linear layers accept it.
warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)", category=UserWarning)


def feature_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout that keeps a sparse CSR matrix sparse (drops only its stored values)."""
    if not training or p == 0:
        return x
    if x.layout == torch.sparse_csr:
        values = F.dropout(x.values(), p, True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape)
    return F.dropout(x, p, True)


def make_conv(conv: str, in_dim: int, out_dim: int, heads: int = 1, concat: bool = True,
              attention_dropout: float = 0.0) -> nn.Module:  # fmt: skip
    """One PyG message-passing layer by name."""
    if conv == "gcn":
        # normalize=False: the caller passes edge weights computed once from the full graph's
        # degrees (gcn_norm), so a node's k-hop subgraph gives the same output as the whole graph.
        return GCNConv(in_dim, out_dim, normalize=False)
    if conv == "gat":
        return GATConv(in_dim, out_dim, heads=heads, concat=concat, dropout=attention_dropout)
    if conv == "sage":
        return SAGEConv(in_dim, out_dim)
    if conv == "gin":
        return GINConv(nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim)))
    raise ValueError(f"unknown conv {conv!r}; one of {', '.join(CONVS)}")


class NodeGNN(nn.Module):
    """`layers` convolutions; dropout before each, ReLU (ELU for GAT, as in its paper) between them.

    GAT's hidden layers concatenate `heads` heads of `hidden` units; its output layer averages one head.
    """

    def __init__(self, conv: str, in_dim: int, hidden: int, out_dim: int, layers: int = 2, heads: int = 1,
                 dropout: float = 0.5, attention_dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.conv, self.dropout = conv, dropout
        self.convs = nn.ModuleList()
        d = in_dim
        for i in range(layers):
            last = i == layers - 1
            if conv == "gat":
                self.convs.append(make_conv("gat", d, out_dim if last else hidden, heads=1 if last else heads,
                                            concat=not last, attention_dropout=attention_dropout))  # fmt: skip
                d = hidden * heads
            else:
                self.convs.append(make_conv(conv, d, out_dim if last else hidden))
                d = hidden
        self.act = F.elu if conv == "gat" else F.relu

    accepts_sparse = True

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = feature_dropout(x, self.dropout, self.training)
            if x.layout == torch.sparse_csr and self.conv not in ("gcn", "gat"):
                # SAGE and GIN gather raw feature rows along edges, which CSR cannot do; densifying after
                # the sparse dropout is still far cheaper than dropout on the dense matrix
                x = x.to_dense()
            x = conv(x, edge_index, edge_weight) if self.conv == "gcn" else conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.act(x)
        return x


class MLP(nn.Module):
    """Linear layers with ReLU and dropout on node features alone: the baseline and the GLNN student."""

    accepts_sparse = True

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None,
                edge_weight: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        for i, lin in enumerate(self.lins):
            x = lin(feature_dropout(x, self.dropout, self.training))
            if i < len(self.lins) - 1:
                x = F.relu(x)
        return x


class GraphGNN(nn.Module):
    """Graph classifier: convolutions with BatchNorm, a sum/mean/max readout, and (GIN paper) a
    prediction from every layer's pooled features summed, so shallow substructures count too."""

    def __init__(self, conv: str, in_dim: int, hidden: int, out_dim: int, layers: int = 5, readout: str = "sum",
                 layer_readout: bool = True, dropout: float = 0.5) -> None:  # fmt: skip
        super().__init__()
        self.pool, self.layer_readout, self.dropout = READOUTS[readout], layer_readout, dropout
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        d = in_dim
        for _ in range(layers):
            if conv == "gin":
                mlp = nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                self.convs.append(GINConv(mlp, train_eps=False))
            else:
                self.convs.append(make_conv(conv, d, hidden))
            self.norms.append(nn.BatchNorm1d(hidden))
            d = hidden
        widths = ([in_dim] if layer_readout else []) + [hidden] * (layers if layer_readout else 1)
        self.heads = nn.ModuleList(nn.Linear(w, out_dim) for w in widths)
        self.conv = conv

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        hs = [x]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if self.conv == "gcn":
                # message passing inside small molecules: GCN's own normalisation is fine here
                x = F.relu(norm(conv(x, *_gcn_inputs(edge_index, x.shape[0]))))
            else:
                x = F.relu(norm(conv(x, edge_index)))
            hs.append(x)
        used = hs if self.layer_readout else hs[-1:]
        return sum(F.dropout(head(self.pool(h, batch)), self.dropout, self.training)
                   for head, h in zip(self.heads, used, strict=True))  # fmt: skip


def _gcn_inputs(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    return gcn_norm(edge_index, None, num_nodes, add_self_loops=True)


def graph_inputs(conv: str, edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(edge_index or adjacency, edge_weight) a node model is fed.

    GCN: the symmetric normalisation with self-loops, computed from the degrees of the graph it is
    given (the whole graph: subgraphs reuse these weights). SAGE and GIN: the transposed adjacency
    as a sparse CSR matrix, so mean/sum aggregation is one sparse matmul instead of gathering
    wide feature rows edge by edge. GAT: the raw edges (it adds self-loops itself).
    """
    if conv == "gcn":
        return _gcn_inputs(edge_index, num_nodes)
    if conv in ("sage", "gin"):
        return to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes)), None
    return edge_index, None


def build_node_model(cfg: Mapping[str, Any], in_dim: int, out_dim: int) -> nn.Module:
    """A node model from one `gnn_train.node_models` entry (or the search's best configuration)."""
    if cfg["conv"] == "mlp":
        return MLP(in_dim, cfg["hidden"], out_dim, cfg["layers"], cfg["dropout"])
    return NodeGNN(cfg["conv"], in_dim, cfg["hidden"], out_dim, cfg["layers"], cfg.get("heads", 1),
                   cfg["dropout"], cfg.get("attention_dropout", 0.0))  # fmt: skip


def build_graph_model(cfg: Mapping[str, Any], in_dim: int, out_dim: int) -> GraphGNN:
    return GraphGNN(cfg["conv"], in_dim, cfg["hidden"], out_dim, cfg["layers"], cfg["readout"],
                    cfg["layer_readout"], cfg["dropout"])  # fmt: skip


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
