"""The ``tfcourse`` command line."""

from __future__ import annotations

import argparse
import sys


def _doctor(args: argparse.Namespace) -> int:
    from tfcourse.doctor import run_doctor

    return run_doctor()


def _demo(args: argparse.Namespace) -> int:
    from tfcourse.demo import run_demo

    return run_demo(args.reversal_steps, args.lm_steps, args.device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfcourse", description="The Transformer from first principles.")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="what is installed, which devices are usable, what is missing")
    doctor.set_defaults(run=_doctor)
    demo = commands.add_parser("demo", help="train two small models on this machine and generate")
    demo.add_argument("--reversal-steps", type=int, default=600)
    demo.add_argument("--lm-steps", type=int, default=600)
    demo.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
