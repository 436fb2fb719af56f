"""The graph pipeline on graphs that are not Cora or MUTAG, with only `graph_data.*` changed.

`prepare ROOT` writes the generated datasets (`edgesmith make-graph-dataset`'s generators, seeded)
into ROOT, and one profile per run (`profiles/try-graph-<run>/`: an overrides.yaml with the
`graph_data` keys and its own MLflow experiment, its params.yaml, a copy of dvc.yaml); then
`dvc repro profiles/try-graph-<run>/dvc.yaml:gnn_report` runs each. `rows PROFILE...` prints one
Markdown row per model of each run, every figure read from the run's own metrics files.

    .venv/bin/python benchmarks/user_graphs.py prepare /tmp/user-graphs
    .venv/bin/dvc repro profiles/try-graph-a/dvc.yaml:gnn_report
    .venv/bin/dvc repro profiles/try-graph-b/dvc.yaml:gnn_report
    .venv/bin/python benchmarks/user_graphs.py rows profiles/try-graph-a profiles/try-graph-b
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.common import io  # noqa: E402
from pipelines.graph import synthetic  # noqa: E402

# run -> (node dataset, graph dataset) as graph_data names them
RUNS = {
    "a": ("KarateClub", "motifs"),  # a PyG class that ships its graph; a folder of .npz graphs
    "b": ("sbm.npz", "motifs_tu"),  # the user's .npz (no split: graph_data.split); TU-format text files
    "c": ("shop_csv", None),  # nodes.csv + edges.csv with class names, the graph half left out
}


def prepare(root: Path) -> None:
    synthetic.write_node_npz(root / "sbm.npz", synthetic.node_graph(3000, 5, 500, seed=0))
    synthetic.write_node_csv(root / "shop_csv", synthetic.node_graph(1500, 4, 200, seed=1, homophily=4.0))
    synthetic.write_graph_folder(root / "motifs", synthetic.motif_graphs(600, 4, seed=0))
    synthetic.write_tu(root / "motifs_tu", "MOTIFS3", synthetic.motif_graphs(450, 3, seed=1, min_nodes=12, max_nodes=40))
    for run, (node, graph) in RUNS.items():
        folder = ROOT / "profiles" / f"try-graph-{run}"
        folder.mkdir(parents=True, exist_ok=True)
        overrides = {"base": {"code_root": "../..", "mlruns_dir": "../../mlruns"},
                     "graph": {"experiment": f"edgesmith-graph-try-{run}"},
                     "graph_data": {"root": str(root), "node_dataset": node, "graph_dataset": graph}}  # fmt: skip
        (folder / "overrides.yaml").write_text(yaml.safe_dump(overrides, sort_keys=False))
        shutil.copy2(ROOT / "dvc.yaml", folder / "dvc.yaml")
        subprocess.run([str(ROOT / ".venv" / "bin" / "edgesmith"), "params", "--profile", str(folder)], cwd=ROOT, check=True)
        print(f"{folder}: node {node}, graph {graph}")


HEADER = ("| run | dataset | what | model | test accuracy, % | published | file bytes | p50, ms | targets |\n"
          "|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def rows(folder: Path) -> list[str]:
    m = lambda name: io.read_json(folder / "metrics" / f"{name}.json")  # noqa: E731
    doc, data = m("graph_report"), m("graph_data")
    what = {"node": lambda d: f"{d['nodes']:,} nodes, {d['edges']:,} edges, {d['features']} features, {d['classes']} "
                               f"classes, split {d['train']}/{d['val']}/{d['test']}",
            "graph": lambda d: f"{d['graphs']} graphs (up to {d['nodes_max']} nodes), {d['features']} features, "
                               f"{d['classes']} classes"}  # fmt: skip
    missed = [k for k, t in doc["targets"].items() if not t["holds"]]
    verdict = "all hold" if not missed else "missed: " + ", ".join(missed)
    out = []
    for r in doc["models"]:
        if r["name"] in ("student_unseen", "mlp", "searched", "sage"):
            continue
        acc = f"{100 * r['accuracy']:.2f}" + (f" ± {100 * r['accuracy_std']:.2f}" if r.get("accuracy_std") else "")
        final = " ★" if r["name"] in doc["finals"].values() else ""
        p50 = "-" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.3f} per {r['task']}"
        published = "-" if r.get("published_accuracy") is None else f"{r['published_accuracy']}"
        size = "-" if r["size_bytes"] is None else f"{r['size_bytes']:,}"
        out.append(f"| {folder.name} | {r['dataset']} | {what[r['task']](data[r['task']])} | `{r['name']}`{final} | {acc} | "
                   f"{published} | {size} | {p50} | {verdict} |")  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "prepare":
        prepare(Path(argv[1]).resolve())
        return 0
    if len(argv) >= 2 and argv[0] == "rows":
        print(HEADER)
        for f in argv[1:]:
            print("\n".join(rows(Path(f))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
