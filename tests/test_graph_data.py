"""The graph pipeline on the user's own graphs: the loaders on hand-made files (every format, and
each bad case as one line), the stage with a half left out, the dense graph-classifier export
against PyTorch, and the GNN search resuming after `kill -9` and keeping to its wall-clock budget."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from pipelines.common.errors import DataError
from pipelines.graph import data, store, synthetic
from tests.conftest import QUICK, ROOT, run_env

SETTINGS = {"undirected": True, "normalize_features": False, "split": [0.6, 0.2, 0.2], "folds": 3}


def node_arrays(**changes) -> dict[str, np.ndarray]:
    """A 12-node, 2-class graph: a ring, features that say the class."""
    n = 12
    y = np.arange(n) % 2
    x = np.stack([y, 1 - y, np.ones(n)], 1).astype(np.float32)
    ring = np.stack([np.arange(n), (np.arange(n) + 1) % n])
    d = {"x": x, "y": y, "edge_index": ring}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


def load_node(tmp_path, d: dict, name: str = "g.npz", **settings) -> store.NodeArrays:
    np.savez(tmp_path / name, **d)
    return data.load_node_dataset(name, tmp_path, tmp_path, tmp_path / "work", {**SETTINGS, **settings}, seed=0)


def test_npz_node_graph_with_masks_is_kept_as_given_and_made_undirected(tmp_path):
    masks = {m: np.isin(np.arange(12), ids) for m, ids in
             (("train_mask", [0, 1, 2, 3]), ("val_mask", [4, 5, 6, 7]), ("test_mask", [8, 9, 10, 11]))}  # fmt: skip
    a = load_node(tmp_path, node_arrays(**masks))
    assert (a.name, a.num_nodes, a.num_features, a.num_classes) == ("g", 12, 3, 2)
    assert [int(m.sum()) for m in (a.train_mask, a.val_mask, a.test_mask)] == [4, 4, 4]
    assert np.array_equal(a.test_mask, masks["test_mask"])
    assert a.edge_index.shape == (2, 24)  # the ring's 12 edges in both directions
    assert {(int(s), int(t)) for s, t in a.edge_index.T} >= {(1, 0), (0, 1)}
    assert np.array_equal(a.dense_features(), node_arrays()["x"])
    directed = load_node(tmp_path, node_arrays(**masks), undirected=False)
    assert directed.edge_index.shape == (2, 12)


def test_a_node_graph_without_a_split_gets_a_stratified_seeded_one(tmp_path):
    a = load_node(tmp_path, node_arrays())
    b = load_node(tmp_path, node_arrays())
    assert np.array_equal(a.train_mask, b.train_mask)
    masks = np.stack([a.train_mask, a.val_mask, a.test_mask])
    assert (masks.sum(0) == 1).all()  # every node in exactly one split
    for m in masks:  # both classes in every split
        assert set(a.y[m]) == {0, 1}


def test_csv_node_folder_with_class_names_and_a_split_column(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    d = node_arrays()
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    rows = ["id,label,f0,f1,f2,split"] + [f"node{i},{'cat' if d['y'][i] else 'dog'},{','.join(str(v) for v in d['x'][i])},{s}"
                                         for i, s in enumerate(splits)]  # fmt: skip
    (folder / "nodes.csv").write_text("\n".join(rows) + "\n")
    (folder / "edges.csv").write_text("source,target\n" + "".join(f"node{i},node{(i + 1) % 12}\n" for i in range(12)))
    a = data.load_node_dataset("mine", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)
    assert a.name == "mine" and a.num_classes == 2
    assert np.array_equal(a.y, 1 - d["y"])  # labels numbered in sorted order: cat 0, dog 1
    assert [int(m.sum()) for m in (a.train_mask, a.val_mask, a.test_mask)] == [6, 3, 3]
    assert a.edge_index.shape == (2, 24)


def _write(tmp_path, name: str, text: str) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)


BAD_NODE_FILES = [
    ("missing key", dict(y=None), r"g.npz: missing array y \(the file has x, edge_index; needs x, y, edge_index, optional"),
    ("edge out of range", dict(edge_index=np.array([[0, 1], [1, 12]])), r"edge index out of range: node ids must be 0..11 \(x has 12 rows\), found 0..12"),
    ("negative edge", dict(edge_index=np.array([[0, -1], [1, 2]])), r"edge index out of range"),
    ("edge index shape", dict(edge_index=np.zeros((3, 4), int)), r"edge_index must be a 2 x E array of node ids, got shape \(3, 4\)"),
    ("labels length", dict(y=np.zeros(11, int)), r"11 labels for 12 nodes"),
    ("labels not integers", dict(y=np.full(12, 0.5)), r"labels must be integer class ids"),
    ("one class", dict(y=np.zeros(12, int)), r"every label is 0; classification needs at least two classes"),
    ("NaN feature", dict(x=np.full((12, 3), np.nan, np.float32)), r"x holds NaN or infinite values"),
    ("partial masks", dict(train_mask=np.ones(12, bool)), r"has train_mask but not test_mask, val_mask"),
    ("overlapping masks", dict(train_mask=np.ones(12, bool), val_mask=np.ones(12, bool), test_mask=np.ones(12, bool)),
     r"the test nodes overlap the training or validation nodes"),
    ("empty mask", dict(train_mask=np.ones(12, bool), val_mask=np.zeros(12, bool), test_mask=np.zeros(12, bool)),
     r"val_mask selects no node"),
]  # fmt: skip


@pytest.mark.parametrize("what,changes,message", BAD_NODE_FILES, ids=[c[0] for c in BAD_NODE_FILES])
def test_a_bad_node_npz_is_one_line_naming_the_file(tmp_path, what, changes, message):
    with pytest.raises(DataError, match=message) as exc:
        load_node(tmp_path, node_arrays(**changes))
    assert "\n" not in str(exc.value) and "g.npz" in str(exc.value)


BAD_CSV = [
    ("no label", "id,label,f0\na,1,0\nb,,1\n", "a,b\n", r"nodes.csv:3: node 'b' has no label"),
    ("bad header", "node,class,f0\na,1,0\n", "a,a\n", r"nodes.csv: the header must start with id,label"),
    ("no features", "id,label\na,1\nb,0\n", "a,b\n", r"nodes.csv: no feature columns after id,label"),
    ("not a number", "id,label,f0\na,1,x\nb,0,1\n", "a,b\n", r"nodes.csv:2: a feature of node 'a' is not a number"),
    ("unknown node", "id,label,f0\na,1,0\nb,0,1\n", "a,zz\n", r"edges.csv:1: node 'zz' is not in nodes.csv"),
    ("short row", "id,label,f0\na,1\nb,0,1\n", "a,b\n", r"nodes.csv:2: 2 columns, the header has 3"),
    ("bad split", "id,label,f0,split\na,1,0,train\nb,0,1,holdout\n", "a,b\n", r"split must be train, val or test, got 'holdout'"),
]  # fmt: skip


@pytest.mark.parametrize("what,nodes,edges,message", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_a_bad_csv_node_folder_is_one_line(tmp_path, what, nodes, edges, message):
    _write(tmp_path, "mine/nodes.csv", nodes)
    _write(tmp_path, "mine/edges.csv", edges)
    with pytest.raises(DataError, match=message):
        data.load_node_dataset("mine", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)


def test_a_file_that_is_not_an_npz_and_a_missing_csv_are_one_line(tmp_path):
    _write(tmp_path, "junk.npz", "not a zip")
    with pytest.raises(DataError, match=r"junk.npz: not a readable .npz file"):
        data.load_node_dataset("junk.npz", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)
    _write(tmp_path, "half/nodes.csv", "id,label,f0\n")
    with pytest.raises(DataError, match=r"half: edges.csv not found; a node dataset folder holds nodes.csv and edges.csv"):
        data.load_node_dataset("half", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)


def test_a_folder_of_npz_graphs_and_the_same_graphs_as_tu_text_files_load_alike(tmp_path):
    graphs = synthetic.motif_graphs(30, 3, seed=0)
    synthetic.write_graph_folder(tmp_path / "mine", graphs)
    synthetic.write_tu(tmp_path / "mine_tu", "MINE", graphs)
    a = data.load_graph_dataset("mine", tmp_path, tmp_path, tmp_path / "w1", SETTINGS, seed=0)
    b = data.load_graph_dataset("mine_tu", tmp_path, tmp_path, tmp_path / "w2", SETTINGS, seed=0)
    assert (a.name, b.name, a.num_graphs, a.num_classes) == ("mine", "MINE", 30, 3)
    assert np.array_equal(a.y, b.y) and np.array_equal(a.x, b.x) and np.array_equal(a.node_ptr, b.node_ptr)
    assert sorted(map(tuple, a.graph(4)[1].T)) == sorted(map(tuple, b.graph(4)[1].T))
    assert np.bincount(a.folds).tolist() == [10, 10, 10]
    train, val, test = a.split()
    assert (train.astype(int) + val + test == 1).all() and test.sum() == val.sum() == 10
    assert a.max_nodes == max(len(g["x"]) for g in graphs)


def test_tu_graphs_without_node_labels_get_one_hot_degree_features(tmp_path):
    graphs = synthetic.motif_graphs(12, 2, seed=1)
    synthetic.write_tu(tmp_path / "bare", "BARE", graphs)
    (tmp_path / "bare" / "BARE_node_labels.txt").unlink()
    a = data.load_graph_dataset("bare", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)
    assert a.x.shape[1] == data.MAX_DEGREE_FEATURE + 1 and (a.x.sum(1) == 1).all()
    x0, ei0 = a.graph(0)
    assert np.array_equal(x0.argmax(1), np.bincount(ei0[1], minlength=len(x0)))


def _graph(n: int = 4, f: int = 3, y=1) -> dict:
    return {"x": np.ones((n, f), np.float32), "edge_index": np.array([[0, 1], [1, 0]]), "y": np.asarray(y)}


BAD_GRAPHS = [
    ("empty graph", [_graph(), {"x": np.zeros((0, 3), np.float32), "edge_index": np.zeros((2, 0), int), "y": np.asarray(0)}],
     r"graph 1: the graph has no nodes"),
    ("feature widths", [_graph(), _graph(f=4)], r"graph 1: 4 node features, the first graph has 3"),
    ("label vector", [_graph(), _graph(y=[0, 1])], r"graph 1: y must be one class id per graph, got 2 values"),
    ("edge out of range", [_graph(), {**_graph(), "edge_index": np.array([[0], [9]])}], r"graph 1: edge index out of range"),
    ("too few per class", [_graph(y=i % 2) for i in range(4)], r"a class has 2 graphs, fewer than graph_data.folds \(3\)"),
]  # fmt: skip


@pytest.mark.parametrize("what,graphs,message", BAD_GRAPHS, ids=[c[0] for c in BAD_GRAPHS])
def test_a_bad_graph_folder_is_one_line(tmp_path, what, graphs, message):
    graphs = graphs if len(graphs) > 2 else [*graphs, *(_graph(y=i % 2) for i in range(6))]
    synthetic.write_graph_folder(tmp_path / "mine", graphs)
    with pytest.raises(DataError, match=message) as exc:
        data.load_graph_dataset("mine", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)
    assert "\n" not in str(exc.value)


def test_an_empty_graph_folder_and_broken_tu_files_are_one_line(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match=r"none: no .npz graphs and no TU-format <NAME>_A.txt file"):
        data.load_graph_dataset("none", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)
    synthetic.write_tu(tmp_path / "broken", "BROKEN", synthetic.motif_graphs(12, 2, seed=0))
    (tmp_path / "broken" / "BROKEN_graph_labels.txt").write_text("0\n1\n")  # 2 labels for 12 graphs
    with pytest.raises(DataError, match=r"broken: (graph \d+|TUDataset\(BROKEN\)) could not be read: "):
        data.load_graph_dataset("broken", tmp_path, tmp_path, tmp_path / "work", SETTINGS, seed=0)


def _stage_params(tmp_path, **graph_data) -> str:
    params = yaml.safe_load((QUICK / "params.yaml").read_text())
    params["base"]["code_root"] = str(ROOT)
    params["base"]["mlruns_dir"] = str(tmp_path / "mlruns")
    params["graph_data"].update(root=str(tmp_path / "root"), **graph_data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return str(tmp_path / "params.yaml")


def _graph_data_stage(tmp_path, **graph_data) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stages.graph_data", "--params", _stage_params(tmp_path, **graph_data),
           "--out", str(tmp_path / "graph"), "--metrics", str(tmp_path / "m.json")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=300)


def test_graph_data_stage_reads_the_users_npz_alone_and_says_a_bad_one_in_one_line(tmp_path):
    synthetic.write_node_npz(tmp_path / "root" / "mine.npz", synthetic.node_graph(200, 3, 40, seed=0))
    proc = _graph_data_stage(tmp_path, node_dataset="mine.npz", graph_dataset=None)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "graph" / store.NODE_FILE).is_file() and not (tmp_path / "graph" / store.GRAPH_FILE).exists()
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["node"]["dataset"] == "mine" and m["node"]["nodes"] == 200 and "graph" not in m
    node, graph = store.load_halves(tmp_path / "graph")
    assert graph is None and node.num_classes == 3
    np.savez(tmp_path / "root" / "bad.npz", x=np.ones((5, 2)), y=np.arange(5) % 2, edge_index=np.array([[0], [7]]))
    proc = _graph_data_stage(tmp_path, node_dataset="bad.npz", graph_dataset=None)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'root' / 'bad.npz'}: edge index out of range: node ids must be 0..4 (x has 5 rows), found 0..7")


def test_dense_graph_classifier_export_matches_pytorch(tmp_path):
    """gnn_train's deployed classifier rebuilt in tf-keras (BatchNorm folded, padded dense graph):
    fp32 TFLite equal to PyTorch on every graph, int8 close, for each exportable conv and readout."""
    from pipelines.graph import dense, export, train

    a = data.graph_arrays("motifs", synthetic.motif_graphs(24, 3, seed=2), folds=3, seed=0, where="motifs")
    graphs = train.graph_data_list(a)
    for conv, readout in (("gin", "sum"), ("gcn", "mean"), ("sage", "max")):
        cfg = {"conv": conv, "hidden": 8, "layers": 2, "readout": readout, "layer_readout": True, "dropout": 0.5,
               "lr": 0.01, "lr_step_epochs": 0, "weight_decay": 0.0, "epochs": 3, "batch_size": 8}  # fmt: skip
        model, _ = train.fit_graph_model(graphs, cfg, a.x.shape[1], a.num_classes, seed=0, epochs=3)
        want = train.graph_logits(model, graphs)
        weights = {k: v.numpy() for k, v in model.state_dict().items()}
        keras_model = export.build_graph_classifier(cfg, weights, a.x.shape[1], a.max_nodes)
        rows = [dense.padded(a, g, a.max_nodes) for g in range(a.num_graphs)]
        blobs = export.to_tflite(keras_model, export.samples(rows))
        for variant, blob in blobs.items():
            (tmp_path / f"{conv}_{variant}.tflite").write_bytes(blob)
        fp32 = dense.predict(tmp_path / f"{conv}_fp32.tflite", a, range(a.num_graphs))
        int8 = dense.predict(tmp_path / f"{conv}_int8.tflite", a, range(a.num_graphs))
        np.testing.assert_allclose(fp32, want, atol=1e-4 * max(1.0, np.abs(want).max()), err_msg=conv)
        assert np.abs(int8 - want).max() < 0.1 * np.abs(want).max(), conv
    with pytest.raises(DataError, match="graph 0 has .* nodes; the exported classifier takes at most 2"):
        dense.padded(a, 0, 2)


def _search_params(tmp_path, **search) -> str:
    params = yaml.safe_load((QUICK / "params.yaml").read_text())
    params["base"]["code_root"] = str(ROOT)
    params["base"]["mlruns_dir"] = str(tmp_path / "mlruns")
    params["gnn_search"].update({"oracle": "random", "epochs": 300, "max_trials": 4, "max_params": "auto", **search})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return str(tmp_path / "params.yaml")


def _search_cmd(tmp_path, params: str) -> list[str]:
    return [sys.executable, "-m", "stages.gnn_search", "--params", params, "--data", str(tmp_path / "graph"),
            "--out", str(tmp_path / "search.json"), "--metrics", str(tmp_path / "m.json"),
            "--tuner-dir", str(tmp_path / "tuner")]  # fmt: skip


def _prepared_node_graph(tmp_path) -> None:
    a = data.node_arrays("sbm", synthetic.node_graph(400, 3, 60, seed=0), SETTINGS, 0, "sbm")
    (tmp_path / "graph").mkdir()
    a.save(tmp_path / "graph" / store.NODE_FILE)


def test_gnn_search_resumes_after_kill_9_without_repeating_finished_trials(tmp_path):
    _prepared_node_graph(tmp_path)
    params = _search_params(tmp_path)
    proc = subprocess.Popen(_search_cmd(tmp_path, params), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=run_env(), cwd=ROOT)  # fmt: skip
    finished = 0
    for line in proc.stdout:  # kill the search as soon as its second trial has finished
        finished += "gnn_search: trial " in line and "-> val" in line
        if finished == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert finished == 2 and proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "m.json").exists()
    recorded = {json.loads(f.read_text())["trial_id"] for f in (tmp_path / "tuner").glob("*/trial_*/trial.json")
                if json.loads(f.read_text())["status"] in ("COMPLETED", "FAILED")}  # fmt: skip
    assert recorded  # at least the first trial was written before the kill
    resumed = subprocess.run(_search_cmd(tmp_path, params), capture_output=True, text=True, env=run_env(), cwd=ROOT,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    log = resumed.stdout + resumed.stderr
    assert "trials already done" in log
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["trials"] == m["completed"] + m["failed"] == 4 and [t["trial_id"] for t in m["all_trials"]] == ["0", "1", "2", "3"]
    assert not [t for t in recorded if f"gnn_search: trial {t} " in log]  # no recorded trial ran again
    assert m["max_params"] == 128 * (60 + 3 + 128) and m["max_params_rule"].startswith("auto")


def test_gnn_search_starts_no_trial_after_its_wall_clock_budget(tmp_path):
    _prepared_node_graph(tmp_path)
    params = _search_params(tmp_path, max_trials=50, max_search_seconds=0.5)
    t0 = time.time()
    proc = subprocess.run(_search_cmd(tmp_path, params), capture_output=True, text=True, env=run_env(), cwd=ROOT,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert 1 <= m["trials"] < 50 and m["search_seconds"] < time.time() - t0
    assert "the wall-clock budget is spent" in proc.stdout + proc.stderr
