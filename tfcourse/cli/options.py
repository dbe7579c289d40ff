"""Options made from declarations: a dataclass field becomes ``--field-name``, a device option is one flag.

A field's help text and its choices live in its metadata (``{"help": ..., "choices": ...}``),
where the setting is declared, so the command line and the Python API always offer the
same settings with the same allowed values.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import fields
from typing import Any

from tfcourse.settings import DEVICES


def add_device_option(parser: argparse.ArgumentParser, help_text: str = "default: cuda when available") -> None:
    parser.add_argument("--device", choices=DEVICES, default=None, help=help_text)


def _option_type(annotation: Any) -> type:
    """``int`` for ``int`` or ``int | None``: the type a command-line value is converted to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return annotation


def add_field_options(parser: argparse.ArgumentParser, settings: type, skip: tuple[str, ...] = ()) -> list[str]:
    """``--name`` for each field of the dataclass ``settings``; the field names added. Defaults stay
    ``None`` so that :func:`given` passes on only the options the user gave."""
    hints = typing.get_type_hints(settings)
    names = []
    for spec in fields(settings):
        if spec.name in skip:
            continue
        flag, kind = "--" + spec.name.replace("_", "-"), _option_type(hints[spec.name])
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=None, help=spec.metadata.get("help"))
        else:
            parser.add_argument(flag, type=kind, choices=spec.metadata.get("choices"), help=spec.metadata.get("help"))
        names.append(spec.name)
    return names


def given(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options among ``names`` that the user gave."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
