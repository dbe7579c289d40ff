"""The settings of a training run and the tasks ``tfcourse train`` knows, without the training itself.

This module imports no torch, so that ``tfcourse train --help`` can list the tasks and make
an option of every field of :class:`RunConfig` at once; :mod:`tfcourse.runs` builds and trains
the task a configuration names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from tfcourse.settings import DEVICES, SCHEDULES, TOKENIZERS, check_choices, setting


@dataclass(frozen=True)
class Target:
    """A run succeeds when ``metric`` reaches ``threshold`` (from above when ``lower_is_better``)."""

    metric: str
    threshold: float
    lower_is_better: bool = False

    def met_by(self, metrics: dict[str, float]) -> bool:
        value = metrics[self.metric]
        return value <= self.threshold if self.lower_is_better else value >= self.threshold

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.lower_is_better else '>='} {self.threshold}"


@dataclass(frozen=True)
class TaskCard:
    """A task of ``tfcourse train``: what it is, its target and the settings it changes from ``RunConfig``'s."""

    description: str
    target: Target
    defaults: dict = field(default_factory=dict)


TASKS: dict[str, TaskCard] = {
    "reverse": TaskCard("reverse a sequence of symbols (encoder-decoder)", Target("exact_match", 0.99),
                        dict(steps=800, lr=3e-3)),
    "copy": TaskCard("copy a sequence of symbols (encoder-decoder)", Target("exact_match", 0.99),
                     dict(steps=600, lr=3e-3)),
    "addition": TaskCard("multi-digit addition, answer directly (GPT)", Target("accuracy", 0.9),
                         dict(steps=1500, lr=3e-3, digits=2)),
    "addition-cot": TaskCard("multi-digit addition with a chain-of-thought scratchpad (GPT)", Target("accuracy", 0.95),
                             dict(steps=600, lr=1e-2, digits=3)),
    "lm": TaskCard("character or BPE language model on the offline corpus (GPT)",
                   Target("nats_per_char", 2.1, lower_is_better=True),
                   dict(steps=800, lr=6e-3, batch_size=32, block_size=64)),
}


@dataclass
class RunConfig:
    """Every setting of a run. ``RunConfig.for_task`` fills in the task's own defaults."""

    task: str
    out: str = setting("", "output folder (default: runs/TASK)")
    # optimisation
    steps: int = setting(1000, "optimiser steps in all (a resumed run counts those already done)")
    batch_size: int = setting(64, "examples per step, split over the processes of a distributed run")
    lr: float = setting(3e-3, "peak learning rate")
    schedule: str = setting("cosine", "learning-rate schedule after warm-up", SCHEDULES)
    warmup: int | None = setting(None, "warm-up steps (default: 10%% of the steps)")
    weight_decay: float = setting(0.01, "AdamW weight decay of weight matrices and embeddings")
    grad_clip: float | None = setting(1.0, "clip the gradient norm to this (0: no clipping)")
    label_smoothing: float = setting(0.0, "probability mass moved from the true token to all tokens")
    amp: bool = setting(False, "mixed precision: bfloat16 (float16 with loss scaling on older GPUs)")
    device: str | None = setting(None, "default: cuda when available", DEVICES)
    seed: int = setting(0, "seed of the initial weights and of the data")
    # model size
    d_model: int = setting(64, "width of the model")
    n_layers: int = setting(2, "layers (of the encoder and of the decoder, for reverse and copy)")
    n_heads: int = setting(4, "attention heads per layer")
    d_ff: int | None = setting(None, "feed-forward width (default: 2 d_model for reverse/copy, 4 d_model for GPT)")
    dropout: float = setting(0.0, "dropout probability")
    # evaluation and checkpoints
    eval_every: int | None = setting(None, "evaluate every N steps (default: 5 evaluations per run)")
    checkpoint_every: int | None = setting(None, "checkpoint every N steps (default: with each evaluation)")
    resume: bool = setting(False, "continue from the checkpoint in the output folder, if there is one")
    # task options
    seq_len: int = setting(8, "reverse, copy: symbols per sequence")
    n_symbols: int = setting(10, "reverse, copy: distinct symbols")
    digits: int = setting(3, "addition: train on numbers of 1..DIGITS digits")
    test_digits: int | None = setting(None, "addition: evaluate on 1..TEST_DIGITS digits (default: DIGITS)")
    tokenizer: str = setting("char", "lm: how text becomes tokens", TOKENIZERS)
    vocab_size: int = setting(512, "lm with bpe: vocabulary size")
    block_size: int = setting(64, "lm: context length in tokens")
    corpus_chars: int | None = setting(200_000, "lm: characters of the corpus to use")

    def __post_init__(self) -> None:
        """Refuse settings no run can use, saying which and why."""
        check_choices(self)
        counts = ("steps", "batch_size", "d_model", "n_layers", "n_heads", "seq_len", "n_symbols", "digits",
                  "block_size")
        too_small = [f"{name}={getattr(self, name)}" for name in counts if getattr(self, name) < 1]
        if too_small:
            raise ValueError(f"{', '.join(too_small)}: these settings must be at least 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                             "each head needs d_model / n_heads dimensions")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1)")

    @classmethod
    def for_task(cls, task: str, **settings) -> RunConfig:
        """The task's defaults, overridden by ``settings``; unknown tasks and settings are errors."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        known = {f.name for f in fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(task=task, **TASKS[task].defaults | settings)

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.task}")

    @property
    def evaluations_every(self) -> int:
        return self.eval_every or max(1, self.steps // 5)
