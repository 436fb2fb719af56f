"""The graph pipeline's library on tiny hand-made graphs: model shapes, readout permutation
invariance, exact subgraph inference, the GLNN loss, the TFLite export against PyTorch, the
search's budget rejections, and the one-line dataset-name error."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from pipelines.common.errors import DataError
from pipelines.graph import data, distill, inference, models, store, train
from tests.conftest import QUICK, ROOT, run_env

# Two triangles joined by one edge (2-3), every edge listed in both directions; node 5 hangs off 4.
EDGES = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (3, 5), (5, 6)]
EDGE_INDEX = torch.tensor([[a for a, b in EDGES] + [b for a, b in EDGES], [b for a, b in EDGES] + [a for a, b in EDGES]])
N, F_IN, C = 7, 5, 3


def tiny_features(seed: int = 0) -> torch.Tensor:
    return torch.rand(N, F_IN, generator=torch.Generator().manual_seed(seed))


def tiny_node_arrays() -> store.NodeArrays:
    """The tiny graph as a prepared node dataset: sparse 0/1 features, a 3/2/2 split."""
    rng = np.random.default_rng(0)
    x = (rng.random((N, F_IN)) < 0.5).astype(np.float32)
    x[:, 0] = 1.0  # no empty rows
    indptr = np.concatenate([[0], np.cumsum((x != 0).sum(1))]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(r) for r in x]).astype(np.int64)
    values = store.row_normalize(indptr, x[x != 0])
    mask = lambda ids: np.isin(np.arange(N), ids)  # noqa: E731
    return store.NodeArrays("tiny", indptr, indices, values, F_IN, EDGE_INDEX.numpy(), np.array([0, 0, 0, 1, 1, 2, 2]),
                            mask([0, 3, 5]), mask([1, 4]), mask([2, 6]), C)  # fmt: skip


@pytest.mark.parametrize("conv", models.CONVS)
def test_node_gnn_shapes(conv):
    model = models.NodeGNN(conv, F_IN, hidden=4, out_dim=C, layers=2, heads=2).eval()
    ei, ew = models.graph_inputs(conv, EDGE_INDEX, N)
    assert model(tiny_features(), ei, ew).shape == (N, C)
    assert len(model.convs) == 2


def test_node_gnn_accepts_csr_features_like_dense_ones():
    x = tiny_features()
    for conv in ("gcn", "gat"):
        model = models.NodeGNN(conv, F_IN, 4, C, heads=2).eval()
        ei, ew = models.graph_inputs(conv, EDGE_INDEX, N)
        assert torch.allclose(model(x.to_sparse_csr(), ei, ew), model(x, ei, ew), atol=1e-6)


def test_mlp_shapes_and_sparse_dropout_keeps_csr():
    mlp = models.MLP(F_IN, 8, C, layers=3, dropout=0.5)
    assert mlp(tiny_features()).shape == (N, C) and len(mlp.lins) == 3
    x = tiny_features().to_sparse_csr()
    dropped = models.feature_dropout(x, 0.5, training=True)
    assert dropped.layout == torch.sparse_csr and dropped.shape == x.shape
    assert models.feature_dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("conv", models.CONVS)
@pytest.mark.parametrize("readout", sorted(models.READOUTS))
def test_graph_gnn_shapes(conv, readout):
    model = models.GraphGNN(conv, F_IN, hidden=4, out_dim=2, layers=3, readout=readout).eval()
    x = torch.cat([tiny_features(0), tiny_features(1)])
    ei = torch.cat([EDGE_INDEX, EDGE_INDEX + N], dim=1)  # a batch of two copies of the graph
    batch = torch.tensor([0] * N + [1] * N)
    assert model(x, ei, batch).shape == (2, 2)
    assert len(model.heads) == 4  # input layer + 3 layers, each with its own prediction


@pytest.mark.parametrize("readout", sorted(models.READOUTS))
def test_graph_readout_is_permutation_invariant(readout):
    torch.manual_seed(0)
    model = models.GraphGNN("gin", F_IN, hidden=8, out_dim=2, layers=3, readout=readout).eval()
    x, batch = tiny_features(), torch.zeros(N, dtype=torch.long)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(N)
    # node i of the permuted graph is node perm[i] of the original; edges are relabelled to match
    out = model(x, EDGE_INDEX, batch)
    out_perm = model(x[perm], inverse[EDGE_INDEX], batch)
    assert torch.allclose(out, out_perm, atol=1e-5)


@pytest.mark.parametrize("conv", ["gcn", "gat", "sage"])
def test_subgraph_inference_equals_full_graph(conv):
    """Per-node inference on the k-hop subgraph must give the full-graph answer (GCN: full-graph degrees)."""
    torch.manual_seed(0)
    model = models.NodeGNN(conv, F_IN, 4, C, layers=2, heads=2).eval()
    x = tiny_features()
    predictor = inference.NodePredictor(model, x, EDGE_INDEX)
    with torch.no_grad():
        full = model(x, *models.graph_inputs(conv, EDGE_INDEX, N)).numpy()
    np.testing.assert_allclose(predictor.full_graph(), full, atol=1e-6)
    for node in range(N):
        np.testing.assert_allclose(predictor(node), full[node], atol=1e-5)


def test_gcn_subgraph_with_its_own_degrees_would_differ():
    """Why the full-graph normalisation matters: the subgraph's own degrees change node 0's answer."""
    torch.manual_seed(0)
    model = models.NodeGNN("gcn", F_IN, 4, C, layers=1).eval()
    x = tiny_features()
    sub = inference.NodePredictor(model, x, EDGE_INDEX)
    xs, ei, _, centre = sub.fetch(2)  # node 2's 1-hop subgraph: 0, 1, 2, 3; node 3 has degree 3 in the graph
    own = models.graph_inputs("gcn", ei[:, ei[0] != ei[1]], len(xs))
    with torch.no_grad():
        wrong = model(xs, *own)[centre]
    assert not torch.allclose(wrong, torch.from_numpy(sub(2)), atol=1e-4)


def test_fetch_stats_and_cost_count_the_neighbourhood():
    stats = inference.fetch_stats(EDGE_INDEX, N, F_IN, hops=1, nodes=[0, 3])
    # node 0: {0, 1, 2}; node 3: {2, 3, 4, 5}
    assert stats["subgraph_nodes"]["mean"] == 3.5 and stats["subgraph_nodes"]["max"] == 4
    assert stats["feature_bytes"]["max"] == 4 * F_IN * 4
    gcn = models.NodeGNN("gcn", F_IN, 4, C, layers=2)
    cost = inference.gnn_cost(gcn, subgraph_nodes=10, subgraph_edges=20)
    assert cost["macs"] == 10 * (F_IN * 4 + 4 * C) + 20 * (4 + C)
    mlp = models.MLP(F_IN, 4, C)
    assert inference.gnn_cost(mlp, 10, 20)["macs"] == F_IN * 4 + 4 * C


def test_glnn_loss_on_hand_made_logits():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 1])
    labelled, everyone = torch.tensor([True, False]), torch.tensor([True, True])
    ce = math.log(1 + math.exp(-2.0))  # CE of node 0: -log softmax(2, 0)[0]

    def kl(t: torch.Tensor, s: torch.Tensor) -> float:
        pt, ps = F.softmax(t, -1), F.softmax(s, -1)
        return float((pt * (pt.log() - ps.log())).sum())

    want_kl = (kl(teacher[0], student[0]) + kl(teacher[1], student[1])) / 2
    got = distill.glnn_loss(student, teacher, y, labelled, everyone, label_weight=0.25, temperature=1.0)
    assert float(got) == pytest.approx(0.25 * ce + 0.75 * want_kl, rel=1e-5)
    assert float(distill.glnn_loss(student, student, y, labelled, everyone, 0.0)) == pytest.approx(0.0, abs=1e-7)
    # temperature T: KL between the T-softened distributions, times T^2
    t2 = distill.glnn_loss(student, teacher, y, labelled, everyone, 0.0, temperature=2.0)
    assert float(t2) == pytest.approx(4 * (kl(teacher[0] / 2, student[0] / 2) + kl(teacher[1] / 2, student[1] / 2)) / 2, rel=1e-5)


def test_unseen_setting_hides_the_test_nodes_from_the_teacher():
    d = train.node_tensors(tiny_node_arrays())
    assert distill.soft_label_mask(d, "transductive").all()
    assert torch.equal(distill.soft_label_mask(d, "unseen"), ~d.test_mask)


def test_training_and_distillation_run_on_the_tiny_graph():
    d = train.node_tensors(tiny_node_arrays())
    cfg = {"conv": "gcn", "hidden": 8, "layers": 2, "dropout": 0.0, "lr": 0.05, "weight_decay": 5e-4,
           "weight_decay_first_only": True, "epochs": 30}  # fmt: skip
    model, run = train.fit_node_model(cfg, d, seed=0)
    again = train.fit_node_model(cfg, d, seed=0)[1]  # the seed decides everything, initial weights included
    assert np.array_equal(run.logits, again.logits)
    assert run.logits.shape == (N, C) and 1 <= run.best_epoch <= 30 and 0 <= run.test_accuracy <= 1
    assert [len(v) for v in run.history.values()] == [30, 30, 30]  # the curves MLflow gets, one value an epoch
    assert run.history["val_accuracy"][run.best_epoch - 1] == pytest.approx(run.val_accuracy)
    student_cfg = {"hidden": 8, "layers": 2, "dropout": 0.0, "lr": 0.05, "weight_decay": 0.0, "epochs": 30,
                   "label_weight": 0.1, "temperature": 1.0}  # fmt: skip
    student, srun = distill.train_student(d, run.logits, student_cfg, seed=0, setting="transductive")
    assert isinstance(student, models.MLP) and srun.logits.shape == (N, C)
    w = distill.mlp_weights(student)
    assert w["kernel_0"].shape == (F_IN, 8) and w["bias_1"].shape == (C,)


def test_stratified_folds_balance_every_class():
    y = np.array([0] * 13 + [1] * 7)
    folds = store.stratified_folds(y, 5, seed=1)
    for f in range(5):
        assert np.bincount(y[folds == f], minlength=2).tolist() in ([3, 1], [2, 2], [3, 2], [2, 1])
    assert np.bincount(folds).tolist() == [4, 4, 4, 4, 4]
    assert np.array_equal(folds, store.stratified_folds(y, 5, seed=1))


def test_prepared_arrays_round_trip(tmp_path):
    a = tiny_node_arrays()
    a.save(tmp_path / "node.npz")
    b = store.NodeArrays.load(tmp_path / "node.npz")
    assert b.name == "tiny" and b.num_classes == C and np.array_equal(b.dense_features(), a.dense_features())
    np.testing.assert_allclose(b.dense_features().sum(1), 1.0, rtol=1e-6)  # row-normalised
    with pytest.raises(DataError, match="not a prepared graph-level graph dataset"):
        store.GraphArrays.load(tmp_path / "node.npz")


def test_dataset_specs_name_pyg_classes_or_the_users_files(tmp_path):
    node, graph = "graph_data.node_dataset", "graph_data.graph_dataset"
    assert data.source_of("cora", tmp_path, node) == ("pyg", ("Planetoid", "Cora"))
    assert data.source_of("KarateClub", tmp_path, node) == ("pyg", ("KarateClub", None))
    assert data.source_of("Amazon/Photo", tmp_path, node) == ("pyg", ("Amazon", "Photo"))
    assert data.source_of("MUTAG", tmp_path, graph) == ("pyg", ("TUDataset", "MUTAG"))
    (tmp_path / "mine.npz").write_bytes(b"")
    assert data.source_of("mine.npz", tmp_path, node) == ("path", tmp_path / "mine.npz")
    with pytest.raises(DataError, match=r"^graph_data.node_dataset: .*other.npz: no such file or folder$"):
        data.source_of("other.npz", tmp_path, node)
    with pytest.raises(DataError, match="neither a file under .* nor Class/Name of a torch_geometric.datasets class"):
        data.source_of("Nope/X", tmp_path, graph)
    with pytest.raises(DataError) as exc:
        data.source_of("Coraa", tmp_path, node)
    assert str(exc.value) == (
        "graph_data.node_dataset: unknown dataset 'Coraa': give a Planetoid name (Cora, CiteSeer, PubMed), "
        "Class/Name of a torch_geometric.datasets class, or a path to your own .npz or folder"
    )


def test_graph_data_stage_with_an_unknown_dataset_exits_2_with_one_line(tmp_path):
    params = yaml.safe_load((QUICK / "params.yaml").read_text())
    params["base"]["code_root"] = str(ROOT)
    params["base"]["mlruns_dir"] = str(tmp_path / "mlruns")
    params["graph_data"]["root"] = str(ROOT.parent / "shared" / "datasets")
    params["graph_data"]["graph_dataset"] = "MUTAGG"  # not offline: PyG's download fails without network
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "stages.graph_data", "--params", str(tmp_path / "params.yaml"),
                           "--out", str(tmp_path / "graph"), "--metrics", str(tmp_path / "m.json")],
                          capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: graph_data.graph_dataset: MUTAGG: not under ") and last.endswith(
        "available offline: Planetoid/Cora, TUDataset/MUTAG"), last
    assert not (tmp_path / "graph").exists() and not (tmp_path / "m.json").exists()


def test_exported_mlp_tflite_matches_pytorch(tmp_path):
    """The student rebuilt in tf-keras and converted: fp32 equal to PyTorch, int8 close and same argmax."""
    from pipelines.edge import evaluate
    from pipelines.graph import export

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.random((200, 16)) < 0.3).astype(np.float32)
    x /= np.maximum(x.sum(1, keepdims=True), 1)
    mlp = models.MLP(16, 32, 4, layers=2, dropout=0.3).eval()
    with torch.no_grad():
        want = mlp(torch.from_numpy(x)).numpy()
    files = export.to_tflite(export.build_mlp(distill.mlp_weights(mlp)), export.samples([{"features": r[None]} for r in x]))
    for variant, blob in files.items():
        (tmp_path / f"{variant}.tflite").write_bytes(blob)
    fp32 = evaluate.predict(tmp_path / "fp32.tflite", x)
    int8 = evaluate.predict(tmp_path / "int8.tflite", x)
    np.testing.assert_allclose(fp32, want, atol=1e-5)
    assert np.abs(int8 - want).max() < 0.05 * np.abs(want).max()
    assert (int8.argmax(1) == want.argmax(1)).mean() >= 0.95
    dtypes = evaluate.tensor_dtypes(tmp_path / "int8.tflite")
    assert dtypes["inputs"] == dtypes["outputs"] == ["int8"] and "float32" not in dtypes["tensors"]
    per_node = inference.TFLiteNodePredictor(tmp_path / "int8.tflite", x, stored_int8=True)
    np.testing.assert_allclose(inference.TFLiteNodePredictor(tmp_path / "int8.tflite", x, stored_int8=False)(7), per_node(7))


def test_search_rejects_trials_over_the_budget_and_keeps_going(tmp_path):
    from pipelines.graph import search

    d = train.node_tensors(tiny_node_arrays())
    space = {"convs": ["gcn", "gat"], "layers": [1, 2], "hidden": [4, 64], "heads": [2], "dropout_min": 0.0,
             "dropout_max": 0.5, "lr_min": 0.01, "lr_max": 0.05, "weight_decay_min": 1e-5, "weight_decay_max": 1e-3}  # fmt: skip
    p = {"oracle": "random", "max_trials": 6, "epochs": 3, "seeds_per_trial": 1, "max_params": 120,
         "max_trial_seconds": 30.0, "max_search_seconds": 0, "cost_weight": 0.0}  # fmt: skip
    trials = search.run_search(d, p, space, seed=0, directory=tmp_path, project="p", max_params=120)
    assert len(trials) == 6
    for t in trials:
        params = models.count_params(models.build_node_model(t["config"], F_IN, C))
        assert t["status"] == ("COMPLETED" if params <= 120 else "FAILED"), (t, params)
    completed = [t for t in trials if t["status"] == "COMPLETED"]
    assert completed and all(0 <= t["metrics"]["val_accuracy"] <= 1 for t in completed)
    assert search.best_trial(trials) in completed
    assert search.best_trial([t for t in trials if t["status"] == "FAILED"]) is None


@pytest.mark.parametrize("interleave", ["model", "node"])
def test_time_rounds_times_every_call_once_per_round(interleave):
    calls: list[tuple[str, int]] = []
    fns = {name: (lambda n, name=name: calls.append((name, n))) for name in ("a", "b", "c")}
    ms = inference.time_rounds(fns, [5, 6, 7, 8], rounds=2, warmup_nodes=1, interleave=interleave)
    assert {k: len(v) for k, v in ms.items()} == {"a": 8, "b": 8, "c": 8}
    assert all((v >= 0).all() for v in ms.values())
    if interleave == "model":  # one untimed warm-up call, then model a answers every node back to back
        assert calls[:5] == [("a", 5), ("a", 5), ("a", 6), ("a", 7), ("a", 8)]
    else:  # three warm-up calls, then node 5 goes to a, b and c in turn
        assert calls[3:6] == [("a", 5), ("b", 5), ("c", 5)]
    with pytest.raises(ValueError, match="interleave"):
        inference.time_rounds(fns, [1], 1, interleave="random")
