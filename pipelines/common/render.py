"""The report for people: a plain-text table, Markdown for a CI summary or a pull-request comment,
and single figures and sentences formatted the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    lines += device_table(report)
    target = (report.get("selection") or {}).get("target")
    why = f", for {target['device']} by {target['evidence']} latency: {target['detail']}" if target else ""
    lines.append(f"final: {report['final']}{why}")
    if report.get("search"):
        lines.append(search_line(report["search"]))
    return "\n".join(lines)


def search_line(search: Mapping[str, Any]) -> str:
    """The search's choice in one line: the chosen trial against the default student's, and the front."""
    front = search.get("front") or []
    chosen = next((t for t in front if t["trial_id"] == search.get("best_trial")), None)
    default = search.get("default_trial_figures")

    def fig(t: Mapping[str, Any]) -> str:
        return f"val accuracy {t['val_accuracy']:.2%}, {t['latency_ms']:.4f} ms, {t['size_bytes']:,} bytes"

    text = f"search: student from trial {search.get('best_trial')}"
    if chosen:
        text += f" ({fig(chosen)})"
    if default and not search.get("chosen_default"):
        text += f" over the default student's trial {default['trial_id']} ({fig(default)})"
    elif search.get("chosen_default"):
        text += ": the default student itself"
    ids = ", ".join(t["trial_id"] for t in front)
    hv = search.get("hypervolume")
    return text + f"; front of {len(front)} trials [{ids}] on {search.get('device')}" + (f", hypervolume {hv:.4f}" if hv is not None else "")


def device_table(report: Mapping[str, Any]) -> list[str]:
    """Per model and emulated core: aarch64 instructions per inference, the estimated and the
    roofline-predicted latency (empty when nothing was emulated)."""
    cores = sorted({d for r in report["models"] for d in (r.get("arm_instructions") or {})})
    if not cores:
        return []
    cells = [["name", *(f"{c}: k instr / est ms / pred ms" for c in cores)]]
    for r in report["models"]:
        instr, est, pred = (r.get(k) or {} for k in ("arm_instructions", "arm_latency_ms", "predicted_latency_ms"))
        cells.append([r["name"], *(f"{instr[c] / 1e3:,.0f} / {est[c]:.3f} / {pred.get(c, float('nan')):.3f}"
                                   if c in instr else "-" for c in cores)])  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["", "emulated ARM cores (arm_cost):"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(3, "  ".join("-" * w for w in widths))
    return lines


def _host_first(name: str) -> tuple[int, str]:
    return (name != "host", name)


def format_figure(field: str, value: Any, ms: str = "{:.3f} ms") -> str:
    """A report figure for people: accuracy in %, times with `ms`, counts with thousands separators."""
    if value is None:
        return "-"
    if field == "accuracy":
        return f"{value:.2%}"
    if field.endswith("_ms"):
        return ms.format(value)
    if field.endswith("_points"):
        return f"{value:.2f} points"
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
    if report.get("search"):
        lines += ["", search_line(report["search"])]
    return "\n".join(lines) + "\n"


def distillation_line(distill: Mapping[str, Any]) -> str:
    """kd_gain over seeds in one sentence, with its 95 % interval when the metrics have one."""
    gain, seeds = distill["kd_gain_points"], ", ".join(str(s) for s in distill["seeds"])
    ci = f"; 95 % CI {gain['ci95_low']:+.2f} to {gain['ci95_high']:+.2f}" if "ci95_low" in gain else ""
    return (f"Distillation: kd_gain **{gain['mean']:+.2f}** points over the baseline student (seeds {seeds}; "
            f"std {gain['std']:.2f}{ci}); baseline {distill['baseline_accuracy']['mean']:.2%}, "
            f"distilled {distill['kd_accuracy']['mean']:.2%}.")  # fmt: skip
