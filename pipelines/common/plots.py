"""The pipeline's plots (PNG through matplotlib's Agg backend): accuracy against a cost per model,
the search's trials, the compression chain's waterfall, and the final model's cost per op."""

from __future__ import annotations

from pathlib import Path

from pipelines.common.report import pareto_front


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COST_LABELS = {
    "latency_p50_ms": "measured p50 latency on this host, ms",
    "memory_access_bytes": "memory-access cost (bytes read + written per inference)",
}


def plot_accuracy_vs(rows: list[dict], final: str, path: str | Path, cost: str = "latency_p50_ms") -> None:
    """PNG of accuracy against a cost, the Pareto front joined, the final model ringed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    front = set(pareto_front(rows, cost))
    pts = [r for r in rows if r[cost] is not None]
    for r in pts:
        ax.scatter(r[cost], r["accuracy"] * 100, s=60, zorder=3,
                   color="tab:blue" if r["dtype"] == "int8" else "tab:orange")  # fmt: skip
        ax.annotate(r["name"], (r[cost], r["accuracy"] * 100), textcoords="offset points", xytext=(6, 4), fontsize=8)
        if r["name"] == final:
            ax.scatter(r[cost], r["accuracy"] * 100, s=220, facecolors="none",
                       edgecolors="tab:red", linewidths=1.5, zorder=4, label=f"final: {final}")  # fmt: skip
    fr = sorted((r for r in pts if r["name"] in front), key=lambda r: r[cost])
    if len(fr) > 1:
        ax.plot([r[cost] for r in fr], [r["accuracy"] * 100 for r in fr], "--", color="gray", label="Pareto front")
    label = COST_LABELS.get(cost, cost)
    if cost == "latency_p50_ms":
        threads = sorted({r["threads"] for r in pts if r["threads"]})
        label += f" ({'/'.join(map(str, threads)) or '?'} thread)"
    _save(fig, ax, path, label, "test accuracy, %", f"accuracy vs {cost} (orange: fp32, blue: int8)", "lower right")


def _save(fig, ax, path: str | Path, xlabel: str, ylabel: str, title: str, legend: str) -> None:
    """Label, grid and legend an accuracy plot, write it, and free the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)


def plot_trials(rows: list[dict], front: list[str], best: str | None, path: str | Path,
                cost: str = "latency_ms", cost_label: str = "latency, ms",
                front_label: str = "Pareto front (accuracy, latency, size)") -> None:  # fmt: skip
    """PNG of a search: completed trials by accuracy and `cost`, the front marked, the best ringed;
    infeasible trials (no accuracy when rejected before training) as crosses along the bottom."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = [r for r in rows if r.get("accuracy") is not None and r.get(cost) is not None and r["status"] == "completed"]
    bad = [r for r in rows if r["status"] == "infeasible" and r.get(cost) is not None]
    floor = min((r["accuracy"] for r in done), default=0.0) * 100 - 1
    ax.scatter([r[cost] for r in done], [r["accuracy"] * 100 for r in done], s=40, color="tab:blue", zorder=3,
               label="completed trials")  # fmt: skip
    if bad:
        ax.scatter([r[cost] for r in bad], [(r["accuracy"] * 100 if r.get("accuracy") is not None else floor)
                                            for r in bad], marker="x", color="tab:gray", zorder=3,
                   label="infeasible (over a budget)")  # fmt: skip
    fr = sorted((r for r in done if r["name"] in front), key=lambda r: r[cost])
    if fr:
        ax.plot([r[cost] for r in fr], [r["accuracy"] * 100 for r in fr], "o", color="tab:orange", markersize=9, zorder=2,
                label=front_label)  # fmt: skip
    for r in done:
        if r["name"] == best:
            ax.scatter(r[cost], r["accuracy"] * 100, s=220, facecolors="none", edgecolors="tab:red", linewidths=1.5,
                       zorder=4, label=f"best: trial {best}")  # fmt: skip
        ax.annotate(r["name"], (r[cost], r["accuracy"] * 100), textcoords="offset points", xytext=(5, 3), fontsize=7)
    _save(fig, ax, path, cost_label, "validation accuracy (int8), %", f"search: {len(rows)} trials", "best")


def plot_waterfall(steps: list[dict], path: str | Path) -> None:
    """Three panels (accuracy, file size, measured p50) along the chain, each step's change labelled."""
    plt = _pyplot()
    panels = (("accuracy", "test accuracy, %", 100.0), ("size_bytes", "file size, KB", 1e-3),
              ("latency_p50_ms", "measured p50 latency, ms (this host)", 1.0))  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=120)
    labels = [s["step"] for s in steps]
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        values = [None if s[key] is None else s[key] * scale for s in steps]
        x = range(len(steps))
        ax.bar(x, [v or 0 for v in values], color=["tab:orange"] + ["tab:blue"] * (len(steps) - 1))
        for i, v in enumerate(values):
            if v is None:
                continue
            prev = values[i - 1] if i else None
            delta = "" if prev in (None, 0) else (f" ({v - prev:+.2f})" if key == "accuracy" else f" (x{v / prev:.2f})")
            ax.annotate(f"{v:.3g}{delta}", (i, v), ha="center", va="bottom", fontsize=7)
        if key == "accuracy":
            known = [v for v in values if v is not None]
            ax.set_ylim(min(known) - 5, 100) if known else None
        ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("compression chain: teacher -> baseline student -> distilled -> pruned -> quantized", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_per_op(ops: list[dict], name: str, path: str | Path) -> None:
    """Bar chart per operator of the final model: memory-access cost and MACs, side by side."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7, 0.45 * len(ops)), 6), dpi=120, sharex=True)
    labels = [f"{o['index']}:{o['op']}" for o in ops]
    x = range(len(ops))
    top.bar(x, [o["memory_access_bytes"] / 1e3 for o in ops], color="tab:purple")
    top.set_ylabel("memory access, KB")
    top.set_title(f"{name}: cost per operator, in execution order")
    bottom.bar(x, [o["macs"] / 1e6 for o in ops], color="tab:green")
    bottom.set_ylabel("MACs, millions")
    bottom.set_xticks(list(x), labels, rotation=70, ha="right", fontsize=7)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
