"""Published test accuracies, shown beside a result only when the dataset is the one they were
measured on (its name and size match). They are context, never targets: targets come from params.

Node datasets: the public Planetoid split (GCN: Kipf & Welling 2017; GAT and MLP: Velickovic et al.
2018, Table 2). Graph datasets: GIN-0, 10-fold cross-validation (Xu et al. 2019, Table 1).
"""

from __future__ import annotations

GCN = "Kipf & Welling (2017), public split"
GAT = "Velickovic et al. (2018), public split"
GIN = "Xu et al. (2019), GIN-0, 10-fold cross-validation"

# (dataset, task, nodes or graphs) -> model conv -> (accuracy %, source)
PUBLISHED: dict[tuple[str, str, int], dict[str, tuple[float, str]]] = {
    ("Cora", "node", 2708): {"gcn": (81.5, GCN), "gat": (83.0, GAT), "mlp": (55.1, GAT)},
    ("CiteSeer", "node", 3327): {"gcn": (70.3, GCN), "gat": (72.5, GAT), "mlp": (46.5, GAT)},
    ("PubMed", "node", 19717): {"gcn": (79.0, GCN), "gat": (79.0, GAT), "mlp": (71.4, GAT)},
    ("MUTAG", "graph", 188): {"gin": (89.4, GIN)},
    ("PROTEINS", "graph", 1113): {"gin": (76.2, GIN)},
    ("NCI1", "graph", 4110): {"gin": (82.7, GIN)},
    ("PTC_MR", "graph", 344): {"gin": (64.6, GIN)},
    ("IMDB-BINARY", "graph", 1000): {"gin": (75.1, GIN)},
}


def published(dataset: str, task: str, size: int, conv: str) -> tuple[float, str] | None:
    """(accuracy %, source) published for this model on this very dataset, or None."""
    return PUBLISHED.get((dataset, task, size), {}).get(conv)
