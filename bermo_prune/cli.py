"""``bermo-prune`` command line.

Exit codes: 0 success, 2 bad input (recipe, data, model path), 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import InputError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2

EPILOG = "exit codes: 0 success, 2 bad input (recipe, data, model path), 1 unexpected error"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bermo-prune", description="Prune BERT and BERMo encoders during fine-tuning.", epilog=EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fine-tune a tiny BERMo on the offline synthetic task and print its result",
        epilog=EPILOG,
    )
    demo.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("list", help="list tasks and model architectures", epilog=EPILOG)
    return parser


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .data import load_task_data
    from .models import ModelSpec, build_model
    from .train import TrainConfig, fine_tune

    torch.manual_seed(args.seed)
    data = load_task_data("synthetic", "synthetic", seed=args.seed)
    spec = ModelSpec(
        arch="bermo", num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128, vocab_size=200
    )
    model, tok = build_model(spec, 2, [t[0] for t in data.train.texts], label_names=data.task.label_names)
    summary = fine_tune(
        model, tok, data, TrainConfig(max_steps=args.steps, lr=1e-3, eval_every=200, seed=args.seed)
    )
    majority = max(data.dev.labels.count(0), data.dev.labels.count(1)) / len(data.dev)
    print(f"task: synthetic sentiment ({len(data.train)} train / {len(data.dev)} dev), model: tiny BERMo")
    print(f"dev accuracy: {summary['final']['accuracy']:.3f}  (majority class {majority:.3f})")
    names = ["embeddings"] + [f"layer {i + 1}" for i in range(spec.num_layers)]
    weights = ", ".join(f"{n}={w:.3f}" for n, w in zip(names, summary["mix"]["layer_weights"], strict=True))
    print(f"learned layer weights: {weights}; gamma={summary['mix']['gamma']:.3f}")
    print(f"steps: {summary['steps']}, wall time: {summary['wall_time_s']:.1f}s")
    return EXIT_OK


def _list(_: argparse.Namespace) -> int:
    from .data import SOURCES, TASKS
    from .models import ARCHS

    print("tasks:        " + ", ".join(TASKS))
    print("data sources: " + ", ".join(SOURCES))
    print("models:       " + ", ".join(ARCHS))
    return EXIT_OK


COMMANDS = {"demo": _demo, "list": _list}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (``bermo-prune`` exits with it)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"bermo-prune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def entry() -> None:  # pragma: no cover - thin wrapper used by the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
