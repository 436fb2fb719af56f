"""The graph pipeline's report: one row per model with the vision report's fields plus `dataset`,
`accuracy_std` and what each latency includes; the targets of the graph pipeline checked; a plot
of accuracy against per-node latency. Plain dicts in, plain dicts out (no torch, no TensorFlow)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.common.report import EXTRA_FIELDS, FIELDS, choose_final

GRAPH_FIELDS = (*FIELDS, "accuracy_std", "dataset", "task", "latency_includes")
LATENCY = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "runs")


def _row(**values: Any) -> dict[str, Any]:
    row = {f: None for f in (*GRAPH_FIELDS, *EXTRA_FIELDS)}
    row.update(values)
    return row


def model_rows(train: Mapping, distill: Mapping, export: Mapping, bench: Mapping) -> list[dict[str, Any]]:
    """Every model of the graph pipeline as a report row; latencies are per node (per graph for
    graph classifiers), all node models measured interleaved in one run."""
    per_node, threads = bench["per_node"]["models"], bench["threads"]
    rows = []
    for name, m in train["node"].items():
        timed = per_node.get(name, {})
        cost = bench["gnn_cost"].get(name, {})
        rows.append(_row(
            name=name, file=m["file"], dtype="float32", accuracy=m["accuracy"], accuracy_std=m["accuracy_std"],
            size_bytes=m["size_bytes"], params=m["params"], macs=cost.get("macs"),
            memory_access_bytes=cost.get("memory_access_bytes"), weight_bytes=cost.get("weight_bytes"),
            threads=threads if timed else None, dataset=m["dataset"], task="node", conv=m["conv"],
            latency_includes=timed.get("includes"), **{k: timed.get(k) for k in LATENCY},
        ))  # fmt: skip
    for setting in ("transductive", "unseen"):
        s = distill[f"student_{setting}"]
        rows.append(_row(name=f"student_{setting}", file=distill["exported"]["file"] if setting == "transductive" else None,
                         dtype="float32", accuracy=s["accuracy"], accuracy_std=s["accuracy_std"],
                         params=distill["exported"]["params"], dataset=distill["dataset"], task="node", conv="mlp",
                         teacher=distill["teacher"]["name"]))  # fmt: skip
    for name, e in export["models"].items():
        b, timed = bench["tflite"].get(name, {}), per_node.get(name, {})
        rows.append(_row(
            name=name, file=e["file"], dtype=e["dtype"], accuracy=e["accuracy"], size_bytes=e["size_bytes"],
            params=b.get("params"), macs=b.get("macs"), memory_access_bytes=b.get("memory_access_bytes"),
            peak_activation_bytes=b.get("peak_activation_bytes"), weight_bytes=b.get("weight_bytes"),
            threads=b.get("threads"), init_ms=b.get("init_ms"), peak_memory_bytes=b.get("peak_memory_bytes"),
            predicted_latency_ms=b.get("predicted_latency_ms"), invoke_latency_p50_ms=b.get("latency_p50_ms"),
            dataset=export["dataset"], task="node", conv="mlp", latency_includes=timed.get("includes"),
            **{k: timed.get(k) for k in LATENCY},
        ))  # fmt: skip
    for name, m in train["graph"].items():
        timed = bench["graph"]["models"].get(name, {})
        rows.append(_row(
            name=name, file=m["file"], dtype="float32", accuracy=m["accuracy"], accuracy_std=m["accuracy_std"],
            size_bytes=m["size_bytes"], params=m["params"], threads=threads if timed else None, dataset=m["dataset"],
            task="graph", conv=m["conv"], latency_includes=timed.get("includes"), **{k: timed.get(k) for k in LATENCY},
        ))  # fmt: skip
    return rows


def choose_final_node_model(rows: list[dict], max_accuracy_drop: float, rank_by: str) -> str:
    """Among the .tflite files (what ships to the edge), the best by `rank_by` within the accuracy bar."""
    candidates = [r for r in rows if r["task"] == "node" and str(r["file"]).endswith(".tflite")]
    return choose_final(candidates, max_accuracy_drop, rank_by)


# Issue 6's targets for the default params (Cora + MUTAG); a missing model leaves its target out.
def check_targets(rows: list[dict], distill: Mapping, bench: Mapping, stage_seconds: float) -> dict[str, dict]:
    by = {r["name"]: r for r in rows}
    teacher = distill["teacher"]["name"]
    out: dict[str, dict] = {}

    def add(key: str, value: float | None, op: str, target: float, what: str) -> None:
        if value is None:
            return
        holds = value >= target if op == ">=" else value <= target
        out[key] = {"value": round(value, 4), "target": f"{op} {target}", "holds": bool(holds), "what": what}

    if "gcn" in by:
        add("gcn_accuracy", 100 * by["gcn"]["accuracy"], ">=", 81.0, "GCN test accuracy, %, mean over seeds")
    if "gat" in by:
        add("gat_accuracy", 100 * by["gat"]["accuracy"], ">=", 82.0, "GAT test accuracy, %, mean over seeds")
    add("student_gap_to_teacher", distill["student_gap_to_teacher_points"], "<=", 2.0,
        f"points the transductive GLNN student is below its teacher ({teacher})")  # fmt: skip
    add("student_gain_over_mlp", distill.get("student_gain_over_mlp_points"), ">=", 8.0,
        "points the transductive GLNN student is above the plain MLP")  # fmt: skip
    if "student_int8" in by and "student_fp32" in by:
        drop = 100 * (by["student_fp32"]["accuracy"] - by["student_int8"]["accuracy"])
        add("int8_drop", drop, "<=", 1.0, "points the int8 TFLite student is below the fp32 one (same weights)")
    speed = bench["per_node"]["speedup_vs_int8_student"].get(teacher)
    add("per_node_speedup", speed, ">=", 20.0,
        f"per-node p50 of the teacher ({teacher}) with its neighbourhood fetch / int8 student, one run, warm caches")  # fmt: skip
    graph = [r for r in rows if r["task"] == "graph" and r["conv"] == "gin"]
    if graph:
        add("gin_accuracy", 100 * graph[0]["accuracy"], ">=", 85.0, f"GIN mean {graph[0]['dataset']} k-fold accuracy, %")
    add("pipeline_seconds", stage_seconds, "<=", 900.0, "sum of the graph stages' own durations, s")
    return out


def plot_accuracy_vs_latency(rows: list[dict], final: str, path: str | Path) -> None:
    """Accuracy against measured per-node p50 (log scale: the MLP and the GNNs are orders apart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r["task"] == "node" and r["latency_p50_ms"] is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for r in pts:
        colour = "tab:blue" if r["dtype"] == "int8" else "tab:green" if r["conv"] == "mlp" else "tab:orange"
        ax.scatter(r["latency_p50_ms"], 100 * r["accuracy"], s=60, color=colour, zorder=3)
        ax.annotate(r["name"], (r["latency_p50_ms"], 100 * r["accuracy"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)  # fmt: skip
        if r["accuracy_std"]:
            ax.errorbar(r["latency_p50_ms"], 100 * r["accuracy"], yerr=100 * r["accuracy_std"], color=colour, capsize=3)
        if r["name"] == final:
            ax.scatter(r["latency_p50_ms"], 100 * r["accuracy"], s=220, facecolors="none", edgecolors="tab:red",
                       linewidths=1.5, zorder=4, label=f"final: {final}")  # fmt: skip
    ax.set_xscale("log")
    threads = sorted({r["threads"] for r in pts if r["threads"]})
    ax.set_xlabel(f"per-node p50 latency on this host, ms ({'/'.join(map(str, threads))} thread; GNNs include the "
                  "neighbourhood fetch)", fontsize=8)  # fmt: skip
    ax.set_ylabel(f"test accuracy, % ({pts[0]['dataset'] if pts else ''})")
    ax.set_title("accuracy vs per-node latency (orange: GNN, green: fp32 MLP, blue: int8 MLP)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
