"""The ``train``, ``generate`` and ``experiment`` subcommands of ``tfcourse``.

Their options are made from the fields of :class:`~tfcourse.runs.RunConfig` and
:class:`~tfcourse.inference.Decoding` (a field ``batch_size`` becomes ``--batch-size``), so
the command line and the Python API always offer the same settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import Field, fields
from pathlib import Path

OPTION_TYPES = {"int": int, "float": float, "str": str}
CHOICES = {"schedule": ["cosine", "noam", "constant"], "device": ["cpu", "cuda"], "tokenizer": ["char", "bpe"],
           "strategy": ["greedy", "sample", "beam"]}


def _add_field_option(parser: argparse.ArgumentParser, spec: Field) -> None:
    """``--name`` for a dataclass field; its default stays None so that only given options override."""
    flag, help_text = "--" + spec.name.replace("_", "-"), spec.metadata.get("help")
    kind = str(spec.type).split(" | ")[0]
    if kind == "bool":
        parser.add_argument(flag, action="store_true", default=None, help=help_text)
    else:
        parser.add_argument(flag, type=OPTION_TYPES[kind], choices=CHOICES.get(spec.name), help=help_text)


def _given(args: argparse.Namespace, names: list[str]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _train(args: argparse.Namespace) -> int:
    from tfcourse.runs import RunConfig, run_training

    names = [spec.name for spec in fields(RunConfig) if spec.name != "task"]
    try:
        summary = run_training(RunConfig.for_task(args.task, **_given(args, names)), progress=not args.quiet)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary is not None:  # None on the ranks of a distributed run other than 0
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    metrics = ", ".join(f"{name} {value:.4g}" for name, value in summary["metrics"].items())
    verdict = "met" if summary["target_met"] else "NOT met"
    print(f"{summary['task']}: {summary['parameters']:,} parameters, {summary['steps']} steps in "
          f"{summary['seconds']:.1f} s on {summary['processes']} x {summary['device']}, "
          f"{summary['tokens_per_s']:,.0f} tokens/s")
    print(f"  {metrics}; target {summary['target']} {verdict}")
    print(f"  wrote {summary['out']}/{{checkpoint.pt,summary.json,loss.png}}")


def _generate(args: argparse.Namespace) -> int:
    from tfcourse.inference import Decoding, load_trained

    try:
        trained = load_trained(args.checkpoint, args.device or "cpu")
        decoding = Decoding(**_given(args, [spec.name for spec in fields(Decoding)]))
        outputs = trained.complete(args.prompt, decoding)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for output in outputs:
        print(f"{args.prompt} -> {output}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from tfcourse import experiments

    name, out = args.name, Path(args.out)
    settings = dict(experiments.FULL[name]) if args.full else {}
    if args.device:
        settings["device"] = args.device
    try:
        result = experiments.RUNNERS[name](progress=not args.quiet, **settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    experiments.PLOTS[name](result).savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    print(experiments.describe(name, result))
    print(f"wrote {out / name}.json and {out / name}.png")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``train``, ``generate`` and ``experiment`` to the ``tfcourse`` command line."""
    from tfcourse.experiments import RUNNERS
    from tfcourse.inference import Decoding
    from tfcourse.runs import TASKS, RunConfig

    tasks = "\n".join(f"  {name:<13} {info.description}; target {info.target}" for name, info in TASKS.items())
    train = commands.add_parser(
        "train", help="train a model on a task; writes a checkpoint, summary.json and loss.png",
        description=f"Tasks:\n{tasks}\n\nUnder torchrun the same command trains data-parallel "
                    "(gloo on CPU, NCCL on GPU), e.g.\n  torchrun --nproc_per_node 2 -m tfcourse.cli train reverse",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("task", choices=list(TASKS))
    for spec in fields(RunConfig):
        if spec.name != "task":
            _add_field_option(train, spec)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    generate = commands.add_parser("generate", help="decode prompts with a trained checkpoint")
    generate.add_argument("checkpoint", help="a checkpoint.pt, or the output folder of `tfcourse train`")
    generate.add_argument("--prompt", required=True,
                          help="reverse/copy: symbols such as '3 1 4 1 5'; addition: '123+45='; lm: any text")
    generate.add_argument("--device", choices=CHOICES["device"], help="default: cpu")
    for spec in fields(Decoding):
        _add_field_option(generate, spec)
    generate.set_defaults(run=_generate)

    experiment = commands.add_parser("experiment", help="lesson 7's experiments; writes JSON and a plot")
    experiment.add_argument("name", choices=list(RUNNERS))
    experiment.add_argument("--full", action="store_true", help="the full-size settings (for a GPU)")
    experiment.add_argument("--device", choices=CHOICES["device"], help="default: cuda when available")
    experiment.add_argument("--out", default="runs/experiments", help="folder for NAME.json and NAME.png")
    experiment.add_argument("--quiet", action="store_true", help="no progress bars")
    experiment.set_defaults(run=_experiment)
