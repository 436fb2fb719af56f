"""The graph pipeline's report: one row per model with the vision report's fields plus `dataset`,
`accuracy_std`, what each latency includes and the published figure where the dataset is the
one it was measured on; the targets `gnn_report` sets checked; a plot
of accuracy against per-node latency. Plain dicts in, plain dicts out (no torch, no TensorFlow)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.common.report import EXTRA_FIELDS, FIELDS, choose_final
from pipelines.graph.references import published

GRAPH_FIELDS = (*FIELDS, "accuracy_std", "dataset", "task", "published_accuracy", "published_by", "latency_includes")
LATENCY = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "runs")


def _row(**values: Any) -> dict[str, Any]:
    row = {f: None for f in (*GRAPH_FIELDS, *EXTRA_FIELDS)}
    row.update(values)
    return row


def _published(dataset: str, task: str, size: int | None, conv: str) -> dict[str, Any]:
    ref = published(dataset, task, size or -1, conv)
    return {"published_accuracy": ref[0], "published_by": ref[1]} if ref else {}


def _tflite_row(name: str, e: Mapping, b: Mapping, timed: Mapping, dataset: str, task: str, conv: str) -> dict[str, Any]:
    return _row(
        name=name, file=e["file"], dtype=e["dtype"], accuracy=e["accuracy"], size_bytes=e["size_bytes"],
        params=b.get("params"), macs=b.get("macs"), memory_access_bytes=b.get("memory_access_bytes"),
        peak_activation_bytes=b.get("peak_activation_bytes"), weight_bytes=b.get("weight_bytes"),
        threads=b.get("threads"), init_ms=b.get("init_ms"), peak_memory_bytes=b.get("peak_memory_bytes"),
        predicted_latency_ms=b.get("predicted_latency_ms"), invoke_latency_p50_ms=b.get("latency_p50_ms"),
        dataset=dataset, task=task, conv=conv, torch_accuracy=e.get("torch_accuracy"),
        latency_includes=timed.get("includes"), **{k: timed.get(k) for k in LATENCY},
    )  # fmt: skip


def model_rows(data: Mapping, train: Mapping, distill: Mapping, export: Mapping, bench: Mapping) -> list[dict[str, Any]]:
    """Every model of the graph pipeline as a report row; latencies are per node (per graph for
    graph classifiers), each task's models measured interleaved in one run. A half whose dataset
    is null has no rows."""
    rows = []
    threads = bench["threads"]
    if "node" in data:
        nodes = data["node"]["nodes"]
        per_node = bench["per_node"]["models"]
        for name, m in train["node"].items():
            timed, cost = per_node.get(name, {}), bench["gnn_cost"].get(name, {})
            rows.append(_row(
                name=name, file=m["file"], dtype="float32", accuracy=m["accuracy"], accuracy_std=m["accuracy_std"],
                size_bytes=m["size_bytes"], params=m["params"], macs=cost.get("macs"),
                memory_access_bytes=cost.get("memory_access_bytes"), weight_bytes=cost.get("weight_bytes"),
                threads=threads if timed else None, dataset=m["dataset"], task="node", conv=m["conv"],
                latency_includes=timed.get("includes"), **{k: timed.get(k) for k in LATENCY},
                **_published(m["dataset"], "node", nodes, name),
            ))  # fmt: skip
        for setting in ("transductive", "unseen"):
            s = distill[f"student_{setting}"]
            rows.append(_row(name=f"student_{setting}", file=distill["exported"]["file"] if setting == "transductive" else None,
                             dtype="float32", accuracy=s["accuracy"], accuracy_std=s["accuracy_std"],
                             params=distill["exported"]["params"], dataset=distill["dataset"], task="node", conv="mlp",
                             teacher=distill["teacher"]["name"]))  # fmt: skip
    if "graph" in data:
        graphs = data["graph"]["graphs"]
        for name, m in train["graph"].items():
            timed = bench["graph"]["models"].get(name, {})
            rows.append(_row(
                name=name, file=m["file"], dtype="float32", accuracy=m["accuracy"], accuracy_std=m["accuracy_std"],
                size_bytes=m["size_bytes"], params=m["params"], threads=threads if timed else None, dataset=m["dataset"],
                task="graph", conv=m["conv"], deployed_test_accuracy=m["deployed"]["test_accuracy"],
                latency_includes=timed.get("includes"), **{k: timed.get(k) for k in LATENCY},
                **_published(m["dataset"], "graph", graphs, name),
            ))  # fmt: skip
    for name, e in export["models"].items():
        task = e.get("task", "node")
        timed = (bench["per_node"]["models"] if task == "node" else bench["graph"]["models"]).get(name, {})
        dataset = export["dataset"] if task == "node" else data["graph"]["dataset"]
        rows.append(_tflite_row(name, e, bench["tflite"].get(name, {}), timed, dataset, task, e.get("conv", "mlp")))
    return rows


def choose_finals(rows: list[dict], max_accuracy_drop: float, rank_by: str) -> dict[str, str]:
    """Per task, among its .tflite files (what ships to the edge), the best by `rank_by` within the accuracy bar."""
    out = {}
    for task in ("node", "graph"):
        candidates = [r for r in rows if r["task"] == task and str(r["file"]).endswith(".tflite")]
        if candidates:
            out[task] = choose_final(candidates, max_accuracy_drop, rank_by)
    return out


def check_targets(rows: list[dict], distill: Mapping, bench: Mapping, stage_seconds: float, p: Mapping) -> dict[str, dict]:
    """The targets `gnn_report` sets (null: not checked), on the models this run has; the absolute
    floors (`min_accuracy`) only on the dataset they name."""
    by = {r["name"]: r for r in rows}
    out: dict[str, dict] = {}

    def add(key: str, value: float | None, op: str, target: float | None, what: str) -> None:
        if value is None or target is None:
            return
        holds = value >= target if op == ">=" else value <= target
        out[key] = {"value": round(value, 4), "target": f"{op} {target}", "holds": bool(holds), "what": what}

    for r in rows:
        if r["file"] is None or str(r["file"]).endswith(".tflite"):
            continue
        floor = p["min_accuracy"].get(r["dataset"], {}).get(r["name"])
        how = "k-fold mean" if r["task"] == "graph" else "mean over seeds"
        add(f"{r['name']}_accuracy", 100 * r["accuracy"], ">=", floor, f"{r['name']} test accuracy on {r['dataset']}, %, {how}")
    if "student_transductive" in by:
        teacher = distill["teacher"]["name"]
        add("student_gap_to_teacher", distill["student_gap_to_teacher_points"], "<=", p["max_student_gap_points"],
            f"points the transductive GLNN student is below its teacher ({teacher})")  # fmt: skip
        add("student_gain_over_mlp", distill.get("student_gain_over_mlp_points"), ">=",
            p["min_student_gain_over_mlp_points"], "points the transductive GLNN student is above the plain MLP")  # fmt: skip
        speed = bench["per_node"]["speedup_vs_int8_student"].get(teacher)
        add("per_node_speedup", speed, ">=", p["min_per_node_speedup"],
            f"per-node p50 of the teacher ({teacher}) with its neighbourhood fetch / int8 student, one run, warm caches")  # fmt: skip
    if "student_int8" in by and "student_fp32" in by:
        drop = 100 * (by["student_fp32"]["accuracy"] - by["student_int8"]["accuracy"])
        add("int8_drop", drop, "<=", p["max_int8_drop_points"], "points the int8 TFLite student is below the fp32 one (same weights)")
    for r in rows:
        if r["task"] == "graph" and r["dtype"] == "int8" and r.get("torch_accuracy") is not None:
            add(f"{r['name']}_drop", 100 * (r["torch_accuracy"] - r["accuracy"]), "<=", p["max_graph_int8_drop_points"],
                f"points {r['name']} is below the deployed PyTorch classifier on the test graphs")  # fmt: skip
    add("pipeline_seconds", stage_seconds, "<=", p["max_pipeline_seconds"], "sum of the graph stages' own durations, s")
    return out


def node_sections(distill: Mapping, bench: Mapping, search: Mapping) -> dict[str, Any]:
    """The report's node-level sections: distillation, per-node inference, the search."""
    per_node = bench["per_node"]
    return {
        "teacher": distill["teacher"]["name"],
        "distillation": {k: distill[k] for k in ("teacher", "mlp", "student_transductive", "student_unseen",
                                                 "student_gap_to_teacher_points", "student_gain_over_mlp_points",
                                                 "unseen_gap_to_teacher_points") if k in distill},
        "per_node_inference": {
            "nodes": per_node["nodes"], "rounds": per_node["rounds"], "threads": per_node["threads"],
            "protocol": per_node["protocol"],
            "speedup_vs_int8_student": per_node["speedup_vs_int8_student"],
            "speedup_vs_int8_student_cold": per_node["speedup_vs_int8_student_cold"],
            "timings": {k: {"latency_p50_ms": v["latency_p50_ms"], "cold_latency_p50_ms": v["cold_latency_p50_ms"],
                            "includes": v["includes"]} for k, v in per_node["models"].items()},
            "neighbourhood_fetch": bench["fetch"],
        },
        "search": {k: search[k] for k in ("oracle", "trials", "completed", "failed", "best_trial", "best_val_accuracy",
                                          "best_config", "max_params", "search_seconds") if k in search},
    }  # fmt: skip


def plot_accuracy_vs_latency(rows: list[dict], finals: Mapping[str, str], path: str | Path) -> None:
    """Accuracy against measured p50 per node (left) and per graph (right), log scale: the MLP and the
    GNNs are orders apart. A half whose dataset is null has no panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in ("node", "graph") if any(r["task"] == t and r["latency_p50_ms"] is not None for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(7.5 * max(1, len(tasks)), 4.5), dpi=120, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=False):
        _panel(ax, [r for r in rows if r["task"] == task and r["latency_p50_ms"] is not None], finals.get(task), task)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _panel(ax: Any, pts: list[dict], final: str | None, task: str) -> None:
    for r in pts:
        tflite = str(r["file"]).endswith(".tflite")
        colour = "tab:blue" if r["dtype"] == "int8" else "tab:green" if r["conv"] == "mlp" or tflite else "tab:orange"
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
    what = "GNNs include the neighbourhood fetch" if task == "node" else "TFLite files: padded dense graph"
    ax.set_xlabel(f"per-{task} p50 latency on this host, ms ({'/'.join(map(str, threads))} thread; {what})", fontsize=8)
    ax.set_ylabel(f"test accuracy, % ({pts[0]['dataset'] if pts else ''})")
    legend = "orange: GNN, green: fp32 MLP, blue: int8 MLP" if task == "node" else "orange: PyTorch (k-fold), blue: int8, green: fp32"
    ax.set_title(f"accuracy vs per-{task} latency ({legend})", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if final:
        ax.legend(loc="best", fontsize=8)
