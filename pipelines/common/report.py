"""The pipeline report: one row per model variant, the recommended model, and its plots.

`metrics/report.json` is a contract other tools read: keep the field names in `FIELDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FIELDS = (
    "name", "file", "dtype", "accuracy", "size_bytes", "params", "macs",
    "memory_access_bytes", "peak_activation_bytes", "threads", "init_ms",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
)  # fmt: skip


# Beyond the contract: the spread of the measurement and the cost model's view.
EXTRA_FIELDS = (
    "weight_bytes", "latency_p50_all_ms", "latency_mean_ms", "latency_std_ms", "runs", "peak_memory_bytes",
    "predicted_latency_ms", "prediction_error_host", "gzip_bytes", "teacher_drop_points", "within_budget",
)  # fmt: skip

# The compression chain's steps, in order, as the waterfall shows them (the last is the chain's pick).
CHAIN_STEPS = (
    ("teacher", "teacher_fp32"), ("baseline student", "student_baseline_fp32"),
    ("distilled", "student_kd_fp32"), ("pruned", "student_pruned_fp32"),
)  # fmt: skip


def model_rows(quantized: Mapping[str, Mapping], measured: Mapping[str, Mapping]) -> list[dict[str, Any]]:
    """Join conversion results (accuracy, size) with measurements and analysis by variant name.

    `params` comes from the .tflite file when it was analysed (what ships, BatchNorm folded).
    """
    rows = []
    for name, q in quantized.items():
        m = measured.get(name, {})
        row = {f: None for f in (*FIELDS, *EXTRA_FIELDS)}
        row.update({k: q[k] for k in (*FIELDS, *EXTRA_FIELDS) if k in q})
        row.update({k: m[k] for k in (*FIELDS, *EXTRA_FIELDS) if k in m and k not in ("file", "size_bytes")})
        row["name"] = name
        rows.append(row)
    return rows


def choose_final(
    rows: list[dict],
    max_accuracy_drop: float,
    rank_by: str,
    reference: str | None = None,
    dtypes: Sequence[str] | None = None,
    tie_tolerance: float = 0.0,
) -> str:
    """The model ranked best by `rank_by` among those within `max_accuracy_drop` points of the
    `reference` model (e.g. the teacher), or of the most accurate model when there is none, and
    of one of `dtypes` when given (e.g. only int8 and mixed files).

    Models within `tie_tolerance` (relative) of the best figure tie, as two p50s closer than the
    benchmark's run-to-run spread do: among them the most accurate wins. Remaining ties are broken
    by the other of size and p50 latency, then by name. When no model qualifies, the reference
    (or the most accurate model) is the answer.
    """
    ref = next((r for r in rows if r["name"] == reference), None)
    best = ref["accuracy"] if ref else max(r["accuracy"] for r in rows)
    ok = [r for r in rows if r["accuracy"] >= best - max_accuracy_drop / 100 - 1e-12
          and (not dtypes or r.get("dtype") in dtypes)]  # fmt: skip
    ok = ok or [ref or max(rows, key=lambda r: r["accuracy"])]
    other = "latency_p50_ms" if rank_by == "size_bytes" else "size_bytes"
    best_rank = min(_or_inf(r[rank_by]) for r in ok)
    tied = [r for r in ok if _or_inf(r[rank_by]) <= best_rank * (1 + tie_tolerance)]

    def key(r: dict) -> tuple:
        return (-r["accuracy"] if tie_tolerance else 0, _or_inf(r[rank_by]), _or_inf(r[other]), r["name"])

    return min(tied, key=key)["name"]


def _or_inf(v: Any) -> float:
    return float("inf") if v is None else float(v)


def pareto_front(rows: list[dict], cost: str | tuple[str, ...] = "latency_p50_ms") -> list[str]:
    """Names of models no other model beats on accuracy (higher) and every cost (lower) at once.

    `cost` is one field or a tuple of fields (e.g. latency and size: a three-way front).
    """
    costs = (cost,) if isinstance(cost, str) else tuple(cost)

    def no_worse(o: dict, r: dict) -> bool:
        return o["accuracy"] >= r["accuracy"] and all(o[c] <= r[c] for c in costs)

    def better(o: dict, r: dict) -> bool:
        return o["accuracy"] > r["accuracy"] or any(o[c] < r[c] for c in costs)

    known = [r for r in rows if all(r[c] is not None for c in costs)]
    return [r["name"] for r in known if not any(o is not r and no_worse(o, r) and better(o, r) for o in known)]


def csv_text(rows: list[dict], columns: tuple[str, ...] = FIELDS) -> str:
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join("" if r.get(c) is None else str(r[c]) for c in columns))
    return "\n".join(lines) + "\n"


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
                cost: str = "latency_ms", cost_label: str = "latency, ms") -> None:  # fmt: skip
    """PNG of a search: completed trials by accuracy and `cost`, the front joined, the best ringed;
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
        ax.plot([r[cost] for r in fr], [r["accuracy"] * 100 for r in fr], "--o", color="tab:orange", zorder=2,
                label="Pareto front (accuracy, latency, size)")  # fmt: skip
    for r in done:
        if r["name"] == best:
            ax.scatter(r[cost], r["accuracy"] * 100, s=220, facecolors="none", edgecolors="tab:red", linewidths=1.5,
                       zorder=4, label=f"best: trial {best}")  # fmt: skip
        ax.annotate(r["name"], (r[cost], r["accuracy"] * 100), textcoords="offset points", xytext=(5, 3), fontsize=7)
    _save(fig, ax, path, cost_label, "validation accuracy (int8), %", f"search: {len(rows)} trials", "best")


def waterfall_steps(rows: list[dict], last: str | None) -> list[dict]:
    """The chain's steps present in `rows` (teacher, baseline, distilled, pruned, then `last`, the
    quantized model the chain settled on), each with accuracy, size and p50 latency."""
    by_name = {r["name"]: r for r in rows}
    steps = [(label, name) for label, name in CHAIN_STEPS if name in by_name]
    if last in by_name:
        steps.append((f"quantized ({by_name[last]['dtype']})", last))
    return [{"step": label, **{k: by_name[name][k] for k in ("name", "accuracy", "size_bytes", "latency_p50_ms")}}
            for label, name in steps]  # fmt: skip


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


def table(report: Mapping[str, Any]) -> str:
    """A plain-text table of the report for people."""
    cols = [("name", "{}"), ("dtype", "{}"), ("accuracy", "{:.4f}"), ("size_bytes", "{:,}"),
            ("params", "{:,}"), ("macs", "{:,}"), ("memory_access_bytes", "{:,}"),
            ("latency_p50_ms", "{:.4f}"), ("latency_p99_ms", "{:.4f}")]  # fmt: skip
    devices = sorted({d for r in report["models"] for d in (r.get("predicted_latency_ms") or {})}, key=_host_first)
    cells = [[c for c, _ in cols] + [f"pred_{d}_ms" for d in devices]]
    for r in report["models"]:
        row = [("-" if r.get(c) is None else f.format(r[c])) for c, f in cols]
        predicted = r.get("predicted_latency_ms") or {}
        for d in devices:
            text = "-" if d not in predicted else f"{predicted[d]:.4f}"
            if d == "host" and r.get("prediction_error_host") is not None:
                text += f" ({r['prediction_error_host']:+.0%})"
            row.append(text)
        cells.append(row)
    cols = cols + [(d, "") for d in devices]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"final: {report['final']}")
    return "\n".join(lines)


def _host_first(name: str) -> tuple[int, str]:
    return (name != "host", name)


# What `budget` in params.yaml bounds: report field, comparison, budget key.
BUDGET = (
    ("accuracy", ">=", "min_accuracy"),
    ("latency_p50_ms", "<=", "max_latency_p50_ms"),
    ("size_bytes", "<=", "max_size_bytes"),
)


def check_budget(report: Mapping[str, Any], budget: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The final model's figures against the budget: one entry per bound, with `ok`.

    A figure the report lacks (null) breaks its bound: a budget that cannot be checked is not met.
    """
    final = next(r for r in report["models"] if r["name"] == report["final"])
    checks = []
    for field, op, key in BUDGET:
        value, limit = final.get(field), budget[key]
        ok = value is not None and (value >= limit if op == ">=" else value <= limit)
        checks.append({"field": field, "value": value, "op": op, "limit": limit, "ok": ok})
    return checks


def format_figure(field: str, value: Any, ms: str = "{:.3f} ms") -> str:
    """A report figure for people: accuracy in %, times with `ms`, counts with thousands separators."""
    if value is None:
        return "-"
    if field == "accuracy":
        return f"{value:.2%}"
    if field.endswith("_ms"):
        return ms.format(value)
    return f"{value:,.0f}"


def budget_lines(checks: list[dict[str, Any]]) -> list[str]:
    return [f"{'ok  ' if c['ok'] else 'FAIL'}  {c['field']:<15} {format_figure(c['field'], c['value']):>12}  "
            f"{'must be ' + c['op']} {format_figure(c['field'], c['limit'])}" for c in checks]  # fmt: skip


def markdown(report: Mapping[str, Any], checks: list[dict[str, Any]] | None = None, title: str = "edgesmith report") -> str:
    """The report as Markdown, for a CI job summary or a pull-request comment."""
    final = report["final"]
    commit = str(report.get("git_commit", ""))[:12]
    lines = [f"### {title}", "",
             f"Pipeline `{report.get('pipeline', '?')}` at commit `{commit}`; final model: **`{final}`**.", ""]  # fmt: skip
    if checks is not None:
        verdict = "within budget" if all(c["ok"] for c in checks) else "**over budget**"
        lines += [f"Budget: {verdict}", "", "| | figure | final model | budget |", "|---|---|---|---|"]
        lines += [f"| {'✅' if c['ok'] else '❌'} | {c['field']} | {format_figure(c['field'], c['value'])} | "
                  f"{c['op']} {format_figure(c['field'], c['limit'])} |" for c in checks]  # fmt: skip
        lines.append("")
    cols = ("accuracy", "size_bytes", "latency_p50_ms", "memory_access_bytes", "macs")
    lines += ["| model | dtype | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for r in report["models"]:
        name = f"**{r['name']}**" if r["name"] == final else r["name"]
        lines.append(f"| {name} | {r.get('dtype') or '-'} | " + " | ".join(format_figure(c, r.get(c)) for c in cols) + " |")
    lines += ["", "Latency is measured on the CI host (1 thread unless stated), never a phone's; "
              "memory access is modelled from the .tflite file."]  # fmt: skip
    distill = report.get("compression_chain", {}).get("distill")
    if distill:
        lines += ["", distillation_line(distill)]
    return "\n".join(lines) + "\n"


def distillation_line(distill: Mapping[str, Any]) -> str:
    """kd_gain over seeds in one sentence, with its 95 % interval when the metrics have one."""
    gain, seeds = distill["kd_gain_points"], ", ".join(str(s) for s in distill["seeds"])
    ci = f"; 95 % CI {gain['ci95_low']:+.2f} to {gain['ci95_high']:+.2f}" if "ci95_low" in gain else ""
    return (f"Distillation: kd_gain **{gain['mean']:+.2f}** points over the baseline student (seeds {seeds}; "
            f"std {gain['std']:.2f}{ci}); baseline {distill['baseline_accuracy']['mean']:.2%}, "
            f"distilled {distill['kd_accuracy']['mean']:.2%}.")  # fmt: skip
