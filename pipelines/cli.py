"""The `edgesmith` command: benchmark any .tflite file, check the set-up and the params, show, compare and check
reports.

Imports are made inside each command so that `edgesmith bench` never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines.common.errors import UserError
from pipelines.edge.emulate import CORES as EMULATED


def cmd_bench(args: argparse.Namespace) -> int:
    from pipelines.common import io

    settings = dict(
        threads=args.threads, warmup_runs=args.warmup, min_runs=args.runs,
        min_seconds=args.min_seconds, pin_cpu=None if args.no_pin else args.cpu, windows=args.windows,
    )  # fmt: skip
    if args.emulate:
        from pipelines.edge import emulate

        result = emulate.count([args.model], args.emulate, invokes=args.invokes)[0]
        if "error" in result:
            raise UserError(result["error"])
        result["harness"] = emulate.describe()
    elif args.remote:
        from pipelines.edge import remote

        result = remote.bench_remote(
            args.model, args.remote, port=args.port, identity=args.identity, python=args.python,
            ssh_options=args.ssh_option, timeout=args.timeout, **settings,
        )  # fmt: skip
    else:
        from pipelines.edge import bench

        result = bench.benchmark(args.model, **settings)
    text = json.dumps(result, indent=2)
    if args.json:
        io.write_text(args.json, text + "\n")
    print(text)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from pipelines.common import io
    from pipelines.edge import analyze

    result = analyze.analyze(args.model)
    if args.json:
        io.write_json(args.json, result)
    print(analyze.format_table(result))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pipelines.common import io
    from pipelines.edge import calibrate

    result = calibrate.calibrate(
        args.folder, threads=args.threads, min_runs=args.runs, min_seconds=args.min_seconds,
        pin_cpu=None if args.no_pin else args.cpu, windows=args.windows,
    )  # fmt: skip
    if args.json:
        io.write_json(args.json, result)
    print(json.dumps(result["profile"], indent=2))
    fit = result["fit"]
    print(f"fit: median |error| {fit['median_abs_error']:.1%}, {fit['within_tolerance']:.0%} of "
          f"{len(fit['models'])} models within {fit['tolerance']:.0%}")  # fmt: skip
    return 0


def _read_report(path: str | Path) -> dict:
    from pipelines.common.report import read_report

    return read_report(path)


def _budget(params: str | Path) -> dict:
    from pipelines.common.params import load_params

    return load_params(params, sections=["budget"])["budget"]


def _store(params: str | Path) -> Path:
    """The MLflow store folder that the stages of this params file use."""
    from pipelines.common.params import load_params

    return Path(params).parent / load_params(params, sections=["base"])["base"]["mlruns_dir"]


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines.common import budget, io, render

    bounds = _budget(args.params) if args.params and args.markdown else None
    doc = _read_report(args.path)
    if not args.markdown:
        print(render.table(doc))
        return 0
    checks = budget.check_budget(doc, bounds) if bounds else None
    text = render.markdown(doc, checks, title=args.title)
    if args.markdown == "-":
        print(text, end="")
    else:
        io.write_text(args.markdown, text)
    return 0


def cmd_check_budget(args: argparse.Namespace) -> int:
    from pipelines.common import budget, render

    bounds = _budget(args.params)  # a bad params file is reported first, as by the stages
    path = args.report or Path(args.params).parent / "metrics" / "report.json"
    doc = _read_report(path)
    checks = budget.check_budget(doc, bounds)
    print(f"budget of {args.params} for the final model '{doc['final']}' of {path}:")
    print("\n".join("  " + line for line in render.budget_lines(checks)))
    broken = [c["field"] for c in checks if not c["ok"]]
    print(f"over budget: {', '.join(broken)}" if broken else "within budget")
    return 1 if broken else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pipelines.common import compare

    store = _store(args.params)
    a, b = (compare.resolve(ref, store, args.pipeline) for ref in (args.a, args.b))
    print(compare.table(a, b))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.common import tracking
    from pipelines.common.params import load_params

    section = "report" if args.pipeline == "vision" else "gnn_report"
    settings = load_params(args.params, sections=[section])[section]
    name = settings["registered_model"]
    if not name:
        raise UserError(f"{args.params}: {section}.registered_model is null: the pipeline registers no model")
    done = tracking.promote(_store(args.params), name, args.to, args.from_alias or settings["alias"], args.version)
    print(f"{name} version {done['version']} ({done['model']}, run {done['run_id'][:12]}) is now "
          + ", ".join(f"@{a}" for a in done["aliases"]))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from pipelines.common import tracking

    store = _store(args.params)
    logged, kept = tracking.sync(store)
    uri = tracking.store_uris(store)[0]
    for line in logged:
        print(f"logged  {line}")
    for line in kept:
        print(f"KEPT    {line}")
    print(f"{len(logged)} run(s) logged to {uri}, {len(kept)} still in {tracking.outbox_dir(store)}")
    return 1 if kept else 0


def cmd_results(args: argparse.Namespace) -> int:
    from pipelines.common import io, results

    io.write_text(args.out, results.render(Path(args.metrics)))
    print(f"wrote {args.out} from {args.metrics}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from pipelines.common import io, params

    if args.schema:
        text = json.dumps(params.json_schema(), indent=2) + "\n"
        if args.schema == "-":
            print(text, end="")
        else:
            io.write_text(args.schema, text)
            print(f"wrote the JSON Schema of params.yaml to {args.schema}")
        return 0
    if args.profile:
        target = Path(args.profile) / "params.yaml"
        text = params.profile_params(args.profile, args.params)
        if args.check:
            if target.is_file() and target.read_text() == text:
                print(f"{target} is up to date with {args.params} and its overrides.yaml")
                return 0
            print(f"{target} is out of date: run `edgesmith params --profile {args.profile}`")
            return 1
        io.write_text(target, text)
        print(f"wrote {target} from {args.params} and {Path(args.profile) / params.PROFILE_OVERRIDES}")
        return 0
    loaded = params.load_params(args.params)
    print(f"{args.params}: valid ({len(loaded)} sections, {sum(len(v) for v in loaded.values())} keys)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pipelines.edge import predict

    results = predict.predict(args.model, args.images, top=args.top, labels=args.labels)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        shown = ", ".join(f"{t['name']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['image']}: {shown}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from pipelines.vision import synthetic

    if not 2 <= args.classes <= 100 or args.size < 8 or args.count < args.classes:
        raise UserError("make-dataset needs 2 to 100 --classes, --size of at least 8 and at least one image per class")
    out = synthetic.write(args.out, args.format, args.count, args.classes, args.size, args.grayscale, args.seed, args.test)
    print(f"wrote {args.count + (args.test if args.format == 'npz' else 0)} {args.size}x{args.size} "
          f"{'grayscale' if args.grayscale else 'RGB'} images in {args.classes} classes to {out} ({args.format})")
    return 0


def cmd_make_graph_dataset(args: argparse.Namespace) -> int:
    from pipelines.graph import synthetic

    if args.classes < 2 or args.count < 2 * args.classes:
        raise UserError("make-graph-dataset needs at least 2 --classes and 2 nodes or graphs per class")
    if args.format in ("npz", "csv"):
        if args.features < 1:
            raise UserError("make-graph-dataset needs at least 1 --features")
        d = synthetic.node_graph(args.count, args.classes, args.features, args.seed)
        out = (synthetic.write_node_npz if args.format == "npz" else synthetic.write_node_csv)(args.out, d)
        what = f"a {args.count}-node graph ({d['edge_index'].shape[1] // 2} edges, {args.features} features)"
    else:
        if args.classes > len(synthetic.MOTIFS):
            raise UserError(f"make-graph-dataset: graph formats have one motif per class, at most {len(synthetic.MOTIFS)} --classes")
        graphs = synthetic.motif_graphs(args.count, args.classes, args.seed)
        out = (synthetic.write_graph_folder(args.out, graphs) if args.format == "graphs"
               else synthetic.write_tu(args.out, Path(args.out).name.upper(), graphs))  # fmt: skip
        what = f"{args.count} graphs"
    print(f"wrote {what} in {args.classes} classes to {out} ({args.format})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from pipelines.common import doctor

    problems = doctor.run(Path(args.params))
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgesmith", description="Ship compressed models to edge devices.")
    sub = ap.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="measure a .tflite file's latency in the TFLite runtime")
    b.add_argument("model", help="path to a .tflite file")
    b.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1, one phone core)")
    b.add_argument("--runs", type=int, default=100, help="minimum number of timed runs")
    b.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs")
    b.add_argument("--min-seconds", type=float, default=1.0, help="keep timing until this much time passed")
    b.add_argument("--windows", type=int, default=5,
                   help="split the timed runs in this many equal windows; p50 is the quietest window's median "
                        "(default 5; 1: the median of all runs)")  # fmt: skip
    b.add_argument("--cpu", type=int, default=0, help="first CPU of the pinned set (default 0)")
    b.add_argument("--no-pin", action="store_true", help="do not pin CPU affinity")
    b.add_argument("--json", help="also write the result to this JSON file")
    b.add_argument("--remote", metavar="USER@HOST", help="run on this device over SSH, with its own Python and runtime")
    b.add_argument("--port", type=int, help="SSH port of the device")
    b.add_argument("--identity", help="SSH private key for the device")
    b.add_argument("--python", default="python3", help="the device's Python interpreter (default python3)")
    b.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="extra ssh -o option")
    b.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole remote run")
    b.add_argument("--emulate", metavar="CORE", choices=sorted(EMULATED),
                   help=f"count aarch64 instructions per inference on this core under QEMU ({', '.join(sorted(EMULATED))}; "
                        "make arm-setup builds the harness) instead of timing here")  # fmt: skip
    b.add_argument("--invokes", type=int, default=3, help="--emulate: invokes counted (the figure: median after the first)")
    b.set_defaults(func=cmd_bench)

    a = sub.add_parser("analyze", help="per-operator MACs, parameters and memory-access cost of a .tflite file")
    a.add_argument("model", help="path to a .tflite file")
    a.add_argument("--json", help="also write the full analysis to this JSON file")
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("calibrate", help="fit this host's cost-model profile to measured latencies")
    c.add_argument("folder", nargs="?", default="models/calibration", help="folder of .tflite files to measure")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--runs", type=int, default=100, help="minimum timed runs per model")
    c.add_argument("--min-seconds", type=float, default=1.0)
    c.add_argument("--windows", type=int, default=5, help="measured latency = the quietest window's median (as bench)")
    c.add_argument("--cpu", type=int, default=0, help="first CPU of the pinned set (default 0)")
    c.add_argument("--no-pin", action="store_true", help="do not pin CPU affinity")
    c.add_argument("--json", help="also write the fitted profile and per-model errors here")
    c.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("report", help="print metrics/report.json as a table, or as Markdown")
    r.add_argument("path", nargs="?", default="metrics/report.json")
    r.add_argument("--markdown", nargs="?", const="-", metavar="OUT",
                   help="write Markdown (a CI job summary, a PR comment) to OUT, or to stdout without OUT")
    r.add_argument("--params", help="with --markdown: also check this params file's budget")
    r.add_argument("--title", default="edgesmith report", help="the Markdown heading")
    r.set_defaults(func=cmd_report)

    cb = sub.add_parser("check-budget", help="exit 1 when the final model breaks the budget in params.yaml")
    cb.add_argument("--params", default="params.yaml")
    cb.add_argument("--report", help="report to check (default: metrics/report.json beside the params file)")
    cb.set_defaults(func=cmd_check_budget)

    cp = sub.add_parser("compare", help="two runs' models side by side: accuracy, size, latency, memory access")
    cp.add_argument("a", help="a report.json, an MLflow summary run id, a DVC experiment name or a git commit")
    cp.add_argument("b", help="the same kinds as A")
    cp.add_argument("--params", default="params.yaml", help="whose MLflow store to search (base.mlruns_dir)")
    cp.add_argument("--pipeline", choices=("vision", "graph"), default="vision")
    cp.set_defaults(func=cmd_compare)

    po = sub.add_parser("promote", help="move a registry alias (production) on to the final model's version (@candidate)")
    po.add_argument("--params", default="params.yaml", help="whose store and registered model (report.registered_model)")
    po.add_argument("--pipeline", choices=("vision", "graph"), default="vision")
    po.add_argument("--to", default="production", help="the alias to move (default production)")
    po.add_argument("--from", dest="from_alias", help="the alias whose version it moves to (default report.alias)")
    po.add_argument("--version", help="this version instead of the --from alias's")
    po.set_defaults(func=cmd_promote)

    sy = sub.add_parser("sync", help="log the runs a stage could not log (the store's outbox) to MLflow now")
    sy.add_argument("--params", default="params.yaml", help="whose store (base.mlruns_dir) and outbox")
    sy.set_defaults(func=cmd_sync)

    rs = sub.add_parser("results", help="write the measured results of metrics/*.json as Markdown tables (docs/results.md)")
    rs.add_argument("--metrics", default="metrics", help="folder of the metrics JSON files (default metrics)")
    rs.add_argument("--out", default="docs/results.md", help="the Markdown file to write (default docs/results.md)")
    rs.set_defaults(func=cmd_results)

    pa = sub.add_parser("params", help="check params.yaml, write its JSON Schema, or write a profile's params.yaml")
    pa.add_argument("--params", default="params.yaml", help="the params file (default params.yaml)")
    pa.add_argument("--schema", metavar="FILE", help="write the JSON Schema of params.yaml to FILE (- for stdout)")
    pa.add_argument("--profile", metavar="FOLDER", help="write FOLDER/params.yaml: --params with FOLDER/overrides.yaml merged in")
    pa.add_argument("--check", action="store_true", help="with --profile: exit 1 if FOLDER/params.yaml is out of date")
    pa.set_defaults(func=cmd_params)

    pr = sub.add_parser("predict", help="classify image files with a .tflite model (TFLite runtime only): top-k names")
    pr.add_argument("model", help="a .tflite image classifier (its labels.txt beside it names the classes)")
    pr.add_argument("images", nargs="+", help="image files (resized to the model's input)")
    pr.add_argument("--top", type=int, default=3, help="classes shown per image (default 3)")
    pr.add_argument("--labels", help="class names, one per line (default: labels.txt beside the model)")
    pr.add_argument("--json", action="store_true", help="print JSON instead of one line per image")
    pr.set_defaults(func=cmd_predict)

    md = sub.add_parser("make-dataset", help="write a generated image dataset of any shape (shapes in colours) to try the pipeline")
    md.add_argument("out", help="folder (--format folder) or .npz file to write")
    md.add_argument("--format", choices=("folder", "npz"), default="folder")
    md.add_argument("--classes", type=int, default=6, help="2 to 100 (default 6)")
    md.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    md.add_argument("--count", type=int, default=1200, help="images (training images with --format npz; default 1200)")
    md.add_argument("--test", type=int, default=0, help="--format npz: test images besides (default 0)")
    md.add_argument("--grayscale", action="store_true", help="one channel instead of RGB")
    md.add_argument("--seed", type=int, default=0)
    md.set_defaults(func=cmd_make_dataset)

    mg = sub.add_parser("make-graph-dataset", help="write a generated graph dataset (node or graph classification) to try the graph pipeline")
    mg.add_argument("out", help="the .npz file (--format npz) or folder to write")
    mg.add_argument("--format", choices=("npz", "csv", "graphs", "tu"), default="npz",
                    help="node classification: npz (one .npz) or csv (nodes.csv + edges.csv); graph classification: "
                         "graphs (a folder of .npz graphs) or tu (TU-format text files)")  # fmt: skip
    mg.add_argument("--classes", type=int, default=4, help="classes (graph formats: 2 to 6, one motif each; default 4)")
    mg.add_argument("--count", type=int, default=2000, help="nodes (node formats) or graphs (default 2000)")
    mg.add_argument("--features", type=int, default=500, help="node formats: bag-of-words features per node (default 500)")
    mg.add_argument("--seed", type=int, default=0)
    mg.set_defaults(func=cmd_make_graph_dataset)

    d = sub.add_parser("doctor", help="check the stack, dataset, runtime and tracking store")
    d.add_argument("--params", default="params.yaml")
    d.set_defaults(func=cmd_doctor)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    for name in ("threads", "runs", "top"):
        if getattr(args, name, 1) < 1:
            print(f"error: --{name} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
