"""``tfcourse doctor`` and ``tfcourse demo``: what is installed, and the course's models at work."""

from __future__ import annotations

import argparse

from tfcourse.cli.errors import command
from tfcourse.cli.options import add_device_option


def _doctor(args: argparse.Namespace) -> int:
    from tfcourse.doctor import run_doctor

    return run_doctor()


def _demo(args: argparse.Namespace) -> int:
    from tfcourse.demo import run_demo

    return run_demo(args.reversal_steps, args.lm_steps, args.device)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``doctor`` and ``demo``."""
    doctor = commands.add_parser("doctor", help="what is installed, which devices are usable, what is missing")
    command(doctor, _doctor)
    demo = commands.add_parser("demo", help="train two small models on this machine and generate")
    demo.add_argument("--reversal-steps", type=int, default=600)
    demo.add_argument("--lm-steps", type=int, default=600)
    add_device_option(demo)
    command(demo, _demo, ValueError)
