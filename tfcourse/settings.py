"""Declared settings: a dataclass field that carries its help text and its allowed values.

:class:`~tfcourse.run_config.RunConfig` and :class:`~tfcourse.decoding.Decoding` declare their
fields with :func:`setting`; the command line reads ``field.metadata["help"]`` and
``field.metadata["choices"]`` to make its options, and :func:`check_choices` refuses any
other value, so both offer the same settings with the same allowed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field, fields
from typing import Any

# The devices a command accepts by name (``--device``); see :func:`tfcourse.distributed.resolve_device`.
DEVICES = ("cpu", "cuda")
# The learning-rate schedules :func:`tfcourse.training.lr_schedule` knows.
SCHEDULES = ("cosine", "noam", "constant")
# The tokenizers ``LanguageModelTask.from_corpus`` can train: one token per character, or byte-level BPE.
TOKENIZERS = ("char", "bpe")
# The experiments of lesson 7 (``tfcourse experiment NAME``; :data:`tfcourse.experiments.RUNNERS` runs them).
EXPERIMENTS = ("cot", "self-consistency", "scaling", "rl")


def setting(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with ``metadata = {"help": help, "choices": tuple(choices) or None}``.

    ``choices=None``: any value of the field's type.
    """
    return field(default=default, metadata={"help": help, "choices": None if choices is None else tuple(choices)})


def check_choices(settings: Any) -> None:
    """Raise ``ValueError`` for a field of the dataclass ``settings`` set to a value outside its choices.

    ``None`` (the default of optional settings) is always allowed.
    """
    for spec in fields(settings):
        choices, value = spec.metadata.get("choices"), getattr(settings, spec.name)
        if choices is not None and value is not None and value not in choices:
            raise ValueError(f"unknown {spec.name} {value!r}; choose one of {', '.join(choices)}")
