"""``bermo-prune`` command line.

Exit codes: 0 success, 1 anything unexpected, 2 bad input (recipe, data, model path, run directory),
3 a run stopped by divergence (policy ``stop``, or ``rollback`` out of retries), 4 a run (or sweep) stopped by
SIGTERM or SIGINT after writing a checkpoint (continue with ``--resume``, or run the sweep again).

Length (about 430 lines): the argument parsers and thin handlers of eleven commands; each handler only calls the
module that does the work. Handlers import that module when called, for start-up time: ``--help``, ``list`` and
``validate`` do not load torch and transformers' models.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .allocator import retain_freed_memory
from .errors import InputError, RunInterrupted

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4

EPILOG = (
    "exit codes: 0 success, 1 unexpected error, 2 bad input (recipe, data, model path, run directory), "
    "3 run stopped by divergence, 4 stopped by SIGTERM/SIGINT after a checkpoint (continue with --resume)"
)


def _run_arguments(parser: argparse.ArgumentParser, recipe_help: str) -> None:
    """The arguments ``run`` and ``pretrain`` share: a recipe, overrides and the run-directory options."""
    parser.add_argument("recipe", help=recipe_help)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    parser.add_argument(
        "--output-dir", help="run directory (default: the recipe's output_dir, else runs/RECIPE)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in the output directory")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the output directory"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``eval`` and ``predict`` share."""
    parser.add_argument("--task", help="the task (default: the run's recipe; needed for a standalone model)")
    parser.add_argument(
        "--column", action="append", metavar="TASK_COLUMN=FILE_COLUMN", help="map a file column (repeatable)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="examples per batch (default: the run's eval batch size)"
    )
    parser.add_argument(
        "--max-length", type=int, help="token cap per example (default: the run's max_length)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, cuda:N, mps"
    )
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="run linears with at most 30%% nonzero weights as sparse CSR products (on the CPU, which --device "
        "auto then means; pays at batch 1)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bermo-prune", description="Prune BERT and BERMo encoders during fine-tuning.", epilog=EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="fine-tune and prune from a YAML recipe",
        description="Fine-tune and prune BERT or BERMo as a recipe says. Overrides are dotted keys, e.g. "
        "model.arch=bermo data.path=../glue/SST-2 train.max_steps=100.",
        epilog=EPILOG,
    )
    _run_arguments(run, "recipe YAML file (see recipes/)")
    pre = sub.add_parser(
        "pretrain",
        help="masked-language-model pretraining of a small BERT from local text",
        description="Pretrain a small BERT encoder (MLM) on local text files; its model/ directory is a standard "
        "checkpoint that run recipes load with model.name=RUN_DIR/model.",
        epilog=EPILOG,
    )
    _run_arguments(pre, "pretraining recipe YAML (see recipes/pretrain_tiny.yaml)")
    com = sub.add_parser(
        "compact",
        help="remove pruned heads and FFN neurons: a smaller dense model, with measured latency",
        description="Compact RUN_DIR/model (head, row or block pruning that emptied whole heads or neurons) into a "
        "smaller dense model; prints parameters, MACs and latency before and after.",
        epilog=EPILOG,
    )
    com.add_argument("run_dir", help="a run directory (its model/) or a model directory")
    com.add_argument("--output", help="where to write the compacted model (default RUN_DIR/compact)")
    com.add_argument("--batch", type=int, default=1, help="latency batch size (default 1)")
    com.add_argument("--length", type=int, default=128, help="latency sequence length (default 128)")
    com.add_argument("--repeats", type=int, default=5, help="timed forward passes (median; default 5)")
    evl = sub.add_parser(
        "eval",
        help="score a run, model directory or compacted model on a task's split or a local file",
        description="Evaluate with the task's own metrics (accuracy, F1, MCC, Pearson/Spearman). The task, batch "
        "size and length cap default to the run's recipe; --data takes a TSV, CSV or JSONL file in the formats "
        "runs read.",
        epilog=EPILOG,
    )
    evl.add_argument("model", help="a run directory, its model/ or compact/, or any model directory")
    evl.add_argument("--data", help="a labelled .tsv, .csv or .jsonl file (default: the run's --split)")
    evl.add_argument("--split", default="dev", help="without --data: the run's dev (default) or train split")
    evl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _scoring_arguments(evl)
    prd = sub.add_parser(
        "predict",
        help="write labels and class probabilities for unlabelled text (TSV or JSONL)",
        description="Label every row of a .tsv, .csv or .jsonl file that has the task's text columns; writes the "
        "rows in input order with the label and each class's probability (a score for regression).",
        epilog=EPILOG,
    )
    prd.add_argument("model", help="a run directory, its model/ or compact/, or any model directory")
    prd.add_argument(
        "--input", required=True, help="a .tsv, .csv or .jsonl file with the task's text columns"
    )
    prd.add_argument("--output", required=True, help="where to write the predictions: a .tsv or .jsonl file")
    _scoring_arguments(prd)
    bench = sub.add_parser(
        "bench",
        help="run a sweep: models x methods x targets x seeds from one base recipe (resumable)",
        description="Run every cell of a sweep spec in parallel workers; finished runs are skipped, half-finished "
        "ones resume; results go to OUTPUT/results.jsonl.",
        epilog=EPILOG,
    )
    bench.add_argument("spec", nargs="+", help="sweep spec YAML (several: run one after the other)")
    bench.add_argument("--workers", type=int, help="parallel runs (default: the spec's, else cores // 2)")
    bench.add_argument(
        "--cells",
        nargs="+",
        metavar="PATTERN",
        help="run only the runs whose names match (shell-style, e.g. '*_movement_0.1_s5'; quote it) and the "
        "teachers they need; the rest wait for a later sitting",
    )
    bench.add_argument(
        "--retrain",
        action="store_true",
        help="with --cells: train again the finished runs it names whose model is not on disk (a fresh machine; "
        "e.g. to probe them), and the teachers they distill from where those models are missing too; every named "
        "run needs a finished row; results.jsonl and sweep.json are not written, the new runs go to "
        "OUTPUT/retrained.jsonl beside the recorded ones; exit 1 if one fails",
    )
    bench.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where runs execute: local worker processes (default) or Ray tasks (pip install 'bermo-prune[ray]')",
    )
    bench.add_argument(
        "--address", help="with --backend ray: a running cluster (auto or HOST:PORT); default: start one"
    )
    pdata = sub.add_parser(
        "probe-data",
        help="generate probing tasks (SentEval format) from local text",
        description="Write SentEval's probing files (split<TAB>label<TAB>sentence) generated from text files "
        "(WikiText-style .txt, or the sentence column of a .tsv): SentLen, WordContent, BShift and CoordInv, whose "
        "labels come from the text itself, and Tense (past_present), SubjNum, ObjNum, SOMO (odd_man_out) and the "
        "dependency-tree depth, whose labels come from spaCy's parse (pip install 'bermo-prune[probe]'). Each "
        "TASK.txt gets a TASK.counts.json.",
        epilog=EPILOG,
    )
    pdata.add_argument("output", help="directory for TASK.txt files")
    pdata.add_argument(
        "--text", nargs="+", required=True, help="text files (.txt, .tsv with a sentence column)"
    )
    pdata.add_argument("--tasks", nargs="+", help="which generated tasks (default: all nine)")
    pdata.add_argument("--seed", type=int, default=0)
    pdata.add_argument(
        "--max-per-label",
        type=int,
        default=2000,
        help="cap per label of the four text-label tasks (default 2000); the parsed tasks take up to "
        "100k/10k/10k examples, as SentEval's",
    )
    prb = sub.add_parser(
        "probe",
        help="probe every layer of models on SentEval-format tasks; writes results, REPORT.md and figures",
        description="Train a simple classifier on frozen per-layer features (and BERMo's mix) of each model.",
        epilog=EPILOG,
    )
    prb.add_argument("tasks", nargs="+", help="SentEval-format files (split<TAB>label<TAB>sentence)")
    prb.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a run or model directory (repeatable; a NAME given again adds a fine-tuned run of that model, "
        "another fine-tuning seed, and its intervals are then over the runs)",
    )
    prb.add_argument("--output", required=True, help="directory for results.jsonl, REPORT.md and figures")
    prb.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    prb.add_argument("--classifier", choices=("logreg", "mlp"), default="logreg")
    prb.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="probe seeds (intervals over them for a model with one run; 2 seeds give the range)",
    )
    pst = sub.add_parser(
        "probe-study",
        help="a probing study of a sweep's models: probes those on this machine not yet probed, writes REPORT.md",
        description="Probe every model of a study spec that exists here and is not yet in the study's results "
        "(the pretrained encoder, finished sweep cells whose model/ is on disk): both poolings, logistic "
        "regression at every layer, the MLP at what the classifier reads; rows are appended after every task, "
        "and REPORT.md states the verdict on the claim by the spec's rule.",
        epilog=EPILOG,
    )
    pst.add_argument("spec", help="study spec YAML (see bermo_prune/probe/study.py)")
    pst.add_argument(
        "--report-only", action="store_true", help="only rewrite REPORT.md from the committed rows"
    )
    pst.add_argument("--run", action="append", help="probe only this run (repeatable)")
    bas = sub.add_parser(
        "baselines",
        help="majority-class and bag-of-words baselines of a sweep (baselines.json, which report reads)",
        description="Train the baselines on the sweep's own train/dev data and record each run's pruning start; "
        "writes OUTPUT/baselines.json (bench writes it when a sweep starts).",
        epilog=EPILOG,
    )
    bas.add_argument("spec", help="sweep spec YAML")
    bas.add_argument("--output", help="the results directory (default: the spec's output_dir)")
    rep = sub.add_parser(
        "report",
        help="write REPORT.md and PNG figures from a sweep's results",
        description="Pareto plot with CIs, divergence rates, convergence speed, BERMo layer weights, paired tests.",
        epilog=EPILOG,
    )
    rep.add_argument(
        "results_dir",
        nargs="+",
        help="the sweep's output directory (holds results.jsonl); several: one report each",
    )
    rep.add_argument(
        "--fraction", type=float, default=0.95, help="convergence target: share of dense accuracy"
    )
    val = sub.add_parser(
        "validate",
        help="check recipes without running them",
        description="Check recipes; report every problem.",
        epilog=EPILOG,
    )
    val.add_argument("recipes", nargs="+", help="recipe YAML files")
    val.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="key=value",
        help="an override to apply before validating (repeatable)",
    )
    sub.add_parser(
        "list", help="list methods, granularities, schedules, tasks and architectures", epilog=EPILOG
    )
    return parser


def _main_process() -> bool:
    """False on the other processes of a data-parallel run (they print nothing)."""
    from .dist import process_state  # here, not at the top: accelerate is slow to import for --help

    return process_state().is_main_process


def _run(args: argparse.Namespace) -> int:
    from .recipe import load_recipe
    from .runner import format_result, run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    retain_freed_memory()  # a training process (see allocator)
    result = run_recipe(
        recipe, args.output_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
    )
    if _main_process():
        print(format_result(result))
    if result.diverged_and_stopped:
        return EXIT_DIVERGED
    return EXIT_OK


def _pretrain(args: argparse.Namespace) -> int:
    from .pretrain import format_pretrain, load_pretrain_recipe, run_pretrain

    recipe = load_pretrain_recipe(args.recipe, args.overrides)
    retain_freed_memory()  # a training process (see allocator)
    summary = run_pretrain(
        recipe, args.output_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
    )
    if _main_process():
        print(format_pretrain(summary))
    return EXIT_OK


def _compact(args: argparse.Namespace) -> int:
    from .compact import compact_run, format_compact

    report = compact_run(args.run_dir, args.output, args.batch, args.length, args.repeats)
    print(format_compact(report))
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    import json

    from .predict import evaluate_model, format_eval, parse_columns

    report = evaluate_model(
        args.model,
        args.data,
        args.split,
        args.task,
        parse_columns(args.column),
        args.batch_size,
        args.max_length,
        args.device,
        args.sparse,
    )
    print(json.dumps(report, indent=2) if args.json else format_eval(report))
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from .predict import format_predict, parse_columns, predict

    report = predict(
        args.model,
        args.input,
        args.output,
        args.task,
        parse_columns(args.column),
        args.batch_size,
        args.max_length,
        args.device,
        args.sparse,
    )
    print(format_predict(report))
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    """Each spec in turn (all validated first); stops at the first that does not finish."""
    from .bench.sweep import load_spec, select_cells

    specs = [load_spec(path) for path in args.spec]
    if args.retrain and not args.cells:
        raise InputError("--retrain: name the finished runs to train again with --cells")
    # --retrain brings a named run's teacher only where its model is needed and missing (retrain_plan)
    chosen = select_cells(specs, args.cells, teachers=not args.retrain) if args.cells else [None] * len(specs)
    if args.retrain:  # every spec's selection is checked before anything runs
        from .bench.sweep import retrain_plan

        for spec, only in zip(specs, chosen, strict=True):
            retrain_plan(spec, only)
    for spec, only in zip(specs, chosen, strict=True):
        code = _bench_one(spec, args, only)
        if code != EXIT_OK:
            return code
    return EXIT_OK


def _bench_one(spec, args: argparse.Namespace, only: set[str] | None) -> int:
    from .bench.sweep import run_sweep

    if args.workers:
        spec.workers = args.workers
    chose = "" if only is None else f" (--cells: {len(only)} of them)"
    print(f"{len(spec.cells)} runs{chose}, {spec.workers} workers ({args.backend}) -> {spec.output_dir}")
    from .bench.baselines import ensure_baselines

    ensure_baselines(spec)
    retrained: list[dict] = []
    rows = run_sweep(
        spec, backend=args.backend, address=args.address, only=only, retrain=args.retrain, retrained=retrained
    )
    if args.retrain:
        from .bench.sweep import MODEL_STATUSES, RETRAINED, has_model

        ok = [e["run"] for e in retrained if e["status"] in MODEL_STATUSES]
        failed = [e["run"] for e in retrained if e["run"] not in ok]
        kept = [
            name for name in only or () if name not in ok and name not in failed and has_model(spec, name)
        ]
        missing = sorted(name for name in only or () if not has_model(spec, name) and name not in failed)
        print(
            f"retrained: {len(ok)} trained again, {len(failed)} failed, {len(kept)} kept (model here); new rows in "
            f"{spec.output_dir / RETRAINED}, results.jsonl unchanged"
        )
        if missing:
            print(
                f"stopped by a signal: {', '.join(missing)} not retrained; run the same command again to continue"
            )
            return EXIT_INTERRUPTED
        return EXIT_ERROR if failed else EXIT_OK
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print("results: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    have = {r["run"] for r in rows}
    missing = [c.name for c in spec.cells if c.name not in have and (only is None or c.name in only)]
    if missing:
        print(
            f"stopped by a signal: {len(missing)} of {len(spec.cells)} runs not finished; run the sweep again to "
            "continue"
        )
        return EXIT_INTERRUPTED
    left = len(spec.cells) - len(rows)
    if left:
        print(f"{left} of {len(spec.cells)} runs not in --cells wait for a later sitting")
    return EXIT_OK


def _probe_data(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .probe.semantic import SPACY_TASKS, generate_semantic, load_parser, parse
    from .probe.tasks import GENERATED, generate, sentences_from_file, write_senteval

    known = (*GENERATED, *SPACY_TASKS)
    tasks = args.tasks or list(known)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise InputError(f"--tasks: unknown task {unknown[0]!r}; generated tasks: {', '.join(known)}")
    texts = {f: sentences_from_file(f) for f in args.text}  # every file checked before any work
    nlp = load_parser() if any(t in SPACY_TASKS for t in tasks) else None  # the probe extra, checked up front
    parsed = None
    out = Path(args.output)
    for name in tasks:
        if name in SPACY_TASKS:
            if parsed is None:
                pairs = [(f, s) for f, sentences in texts.items() for s in sentences]
                print(f"parsing {len(pairs)} sentences with spaCy (5-28 tokens kept)")
                parsed = parse(pairs, nlp, log=print)
            task, counts = generate_semantic(name, parsed, seed=args.seed)
        else:
            task = generate(
                name, [s for v in texts.values() for s in v], seed=args.seed, max_per_label=args.max_per_label
            )
            counts = {
                "task": name,
                "seed": args.seed,
                "splits": {k: len(v) for k, v in task.examples.items()},
            }
            counts["labels"] = {
                k: {lab: sum(label == lab for label, _ in v) for lab in task.labels}
                for k, v in task.examples.items()
            }
        path = write_senteval(task, out / f"{name}.txt")
        counts["text"] = list(args.text)
        (out / f"{name}.counts.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
        sizes = ", ".join(f"{k} {len(v)}" for k, v in task.examples.items())
        print(f"{path}: {len(task.labels)} labels; {sizes}")
    return EXIT_OK


def _probe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .probe.probing import probe_task
    from .probe.report import write_probe_report
    from .probe.tasks import read_senteval
    from .rundir import find_model

    models: dict[str, list[str]] = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--model {item}: expected NAME=DIR")
        find_model(path)  # checked before any work
        models.setdefault(name, []).append(path)  # a name given again: another fine-tuned run (seed) of it
    tasks = [read_senteval(t) for t in args.tasks]  # every file checked before any work
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in tasks:
        rows += probe_task(task, models, args.pooling, args.classifier, tuple(range(args.seeds)))
    command = "bermo-prune probe " + " ".join(
        [
            *args.tasks,
            *(f"--model {m}" for m in args.model),
            f"--output {args.output}",
            f"--pooling {args.pooling}",
        ]
        + [f"--classifier {args.classifier}", f"--seeds {args.seeds}"]
    )
    print(f"wrote {write_probe_report(out, rows, command)}")
    return EXIT_OK


def _probe_study(args: argparse.Namespace) -> int:
    from .probe.study import load_study, read_rows, run_study
    from .probe.study_report import write_study_report

    study = load_study(args.spec)
    if args.report_only:
        if not (study.out / "results.jsonl").is_file():
            raise InputError(
                f"{study.out}: no results.jsonl yet; probe first: bermo-prune probe-study {args.spec}"
            )
        print(f"wrote {write_study_report(study, read_rows(study.out))}")
    else:
        print(f"wrote {run_study(study, only=args.run)}")
    return EXIT_OK


def _baselines(args: argparse.Namespace) -> int:
    from .bench.baselines import write_baselines
    from .bench.sweep import load_spec

    print(f"wrote {write_baselines(load_spec(args.spec), args.output)}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from .bench.report import write_report

    for results_dir in args.results_dir:
        print(f"wrote {write_report(results_dir, args.fraction)}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from .errors import RecipeError
    from .pretrain import is_pretrain_recipe, parse_pretrain_recipe
    from .recipe import parse_recipe, read_yaml

    failed = 0
    for path in args.recipes:
        try:
            raw = read_yaml(path)
            if isinstance(raw, dict) and "base" in raw and "methods" in raw:  # a sweep spec
                from .bench.sweep import load_spec

                print(f"{path}: ok ({len(load_spec(path).cells)} runs)")
                continue
            if isinstance(raw, dict) and "tasks_dir" in raw and "conditions" in raw:  # a probing study
                from .probe.study import load_study

                print(f"{path}: ok (a probing study of {len(load_study(path).planned)} models)")
                continue
            parse = parse_pretrain_recipe if is_pretrain_recipe(raw) else parse_recipe
            parse(raw, path, args.overrides)
            print(f"{path}: ok")
        except RecipeError as exc:
            failed += 1
            print(f"bermo-prune: error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _list(_: argparse.Namespace) -> int:
    from .data import SOURCES, TASKS
    from .families import available_families
    from .models import ARCHS, PACKAGED_ENCODERS
    from .pruners import GRANULARITIES, SCOPES, available_pruners, pruner_class
    from .schedule import SCHEDULES

    methods = ", ".join(f"{m} ({pruner_class(m).schedule_key})" for m in available_pruners())
    print("methods:       none, " + methods)
    print("granularities: " + ", ".join(GRANULARITIES))
    print("scopes:        " + ", ".join(SCOPES))
    print("schedules:     " + ", ".join(SCHEDULES))
    print("tasks:         " + ", ".join(TASKS))
    print("data sources:  auto, " + ", ".join(SOURCES))
    print("models:        " + ", ".join(ARCHS) + " (plain or BERMo)")
    print("families:      " + ", ".join(available_families()))
    print(
        "encoders:      "
        + ", ".join(f"{k} ({v[2]})" for k, v in PACKAGED_ENCODERS.items())
        + "  (model.name)"
    )
    return EXIT_OK


COMMANDS = {
    "run": _run,
    "pretrain": _pretrain,
    "compact": _compact,
    "eval": _eval,
    "predict": _predict,
    "bench": _bench,
    "probe-data": _probe_data,
    "probe": _probe,
    "probe-study": _probe_study,
    "baselines": _baselines,
    "report": _report,
    "validate": _validate,
    "list": _list,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (``bermo-prune`` exits with it)."""
    parser = _parser()
    # Overrides may come before or after the options (argparse stops a positional list at the first option).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command in ("run", "pretrain") and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"bermo-prune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunInterrupted as exc:
        print(f"bermo-prune: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry() -> None:  # pragma: no cover - thin wrapper used by the console script
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`bermo-prune eval RUN --json | head`): no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit-time flush would fail the same way
        code = 0
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
