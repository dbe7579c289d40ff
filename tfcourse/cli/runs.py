"""``tfcourse train``, ``generate`` and ``experiment``: training runs, decoding with them, lesson 7's experiments.

Their options are made from the fields of :class:`~tfcourse.run_config.RunConfig` and
:class:`~tfcourse.decoding.Decoding` (a field ``batch_size`` becomes ``--batch-size``). Those
modules and the names of the experiments (``tfcourse.settings.EXPERIMENTS``) import no torch,
so the parser and ``--help`` are quick; each command imports the training or decoding code
(torch, matplotlib) when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tfcourse.cli.errors import command
from tfcourse.cli.options import add_device_option, add_field_options, given
from tfcourse.decoding import Decoding
from tfcourse.run_config import TASKS, RunConfig
from tfcourse.settings import EXPERIMENTS

RUN_OPTIONS = ("task",)  # RunConfig fields that are not options (the task is an argument)


def _train(args: argparse.Namespace) -> int:
    from tfcourse.runs import run_training

    config = RunConfig.for_task(args.task, **given(args, args.settings))
    summary = run_training(config, progress=not args.quiet)
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
    from tfcourse.inference import load_trained

    trained = load_trained(args.checkpoint, args.device)
    for output in trained.complete(args.prompt, Decoding(**given(args, args.settings))):
        print(f"{args.prompt} -> {output}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from tfcourse import experiments

    name, out = args.name, Path(args.out)
    settings = dict(experiments.FULL[name]) if args.full else {}
    if args.device:
        settings["device"] = args.device
    result = experiments.RUNNERS[name](progress=not args.quiet, **settings)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    experiments.PLOTS[name](result).savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    print(experiments.describe(name, result))
    print(f"wrote {out / name}.json and {out / name}.png")
    return 0


def _train_arguments(train: argparse.ArgumentParser) -> None:
    tasks = "\n".join(f"  {name:<13} {info.description}; target {info.target}" for name, info in TASKS.items())
    train.description = (f"Tasks:\n{tasks}\n\nUnder torchrun the same command trains data-parallel "
                         "(gloo on CPU, NCCL on GPU), e.g.\n  torchrun --nproc_per_node 2 -m tfcourse.cli train reverse")
    train.add_argument("task", choices=list(TASKS))
    train.set_defaults(settings=add_field_options(train, RunConfig, skip=RUN_OPTIONS))
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _generate_arguments(generate: argparse.ArgumentParser) -> None:
    generate.add_argument("checkpoint", help="a checkpoint.pt, or the output folder of `tfcourse train`")
    generate.add_argument("--prompt", required=True,
                          help="reverse/copy: symbols such as '3 1 4 1 5'; addition: '123+45='; lm: any text")
    add_device_option(generate)
    generate.set_defaults(settings=add_field_options(generate, Decoding))


def _experiment_arguments(experiment: argparse.ArgumentParser) -> None:
    experiment.add_argument("name", choices=EXPERIMENTS)
    experiment.add_argument("--full", action="store_true", help="the full-size settings (for a GPU)")
    add_device_option(experiment)
    experiment.add_argument("--out", default="runs/experiments", help="folder for NAME.json and NAME.png")
    experiment.add_argument("--quiet", action="store_true", help="no progress bars")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``train``, ``generate`` and ``experiment``."""
    train = commands.add_parser(
        "train", help="train a model on a task; writes a checkpoint, summary.json and loss.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _train_arguments(train)
    command(train, _train, ValueError)
    generate = commands.add_parser("generate", help="decode prompts with a trained checkpoint")
    _generate_arguments(generate)
    command(generate, _generate, ValueError, FileNotFoundError)
    experiment = commands.add_parser("experiment", help="lesson 7's experiments; writes JSON and a plot")
    _experiment_arguments(experiment)
    command(experiment, _experiment, ValueError)
