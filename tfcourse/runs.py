"""Training runs: the tasks ``tfcourse train`` knows, their settings, and what a run writes.

A run trains one task's model (see ``TASKS``) and writes its output folder (see
:mod:`tfcourse.run_folder`): a resumable checkpoint that also says how to rebuild the model,
``summary.json`` and ``loss.png``.

Each task states a target (say ``exact_match >= 0.99``) that its default settings reach.
Started by ``torchrun``, the same run trains data-parallel over all processes.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter
from torch import Tensor, nn

from tfcourse.codec import Codec, SymbolCodec, TextCodec
from tfcourse.distributed import ProcessGroup, process_group
from tfcourse.gpt_tasks import AdditionTask, LanguageModelTask, gpt_config, next_token_loss
from tfcourse.model import count_parameters
from tfcourse.reasoning import TERMINATOR
from tfcourse.run_config import TASKS, RunConfig, Target
from tfcourse.run_folder import (
    CHECKPOINT,
    LOSS_PLOT,
    SUMMARY,
    gpt_spec,
    model_from_spec,
    run_metadata,
    transformer_spec,
)
from tfcourse.tasks import Seq2SeqTask, exact_match, teacher_forcing_loss, transformer_arguments
from tfcourse.training import TrainResult, seeded_batches, train

Batch = tuple[Tensor, ...]


class TrainingTask(Protocol):
    """What a run needs from a task."""

    def batch(self, batch_size: int, seed: int) -> Batch: ...

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Tensor: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def model_spec(self, config: RunConfig) -> dict:
        """The spec from which ``run_folder.model_from_spec`` builds the (untrained) model."""
        ...

    def codec(self) -> Codec:
        """How a prompt to the trained model becomes ids, and its output text."""
        ...


# ------------------------------------------------------------------ the tasks


@dataclass
class SymbolTask:
    """Reversal or copying with the encoder-decoder ``Transformer`` (see :mod:`tfcourse.tasks`)."""

    task: Seq2SeqTask
    n_eval: int = 1000

    def batch(self, batch_size: int, seed: int) -> Batch:
        return self.task.seeded_batch(batch_size, seed)

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Tensor:
        return teacher_forcing_loss(model, batch, smoothing)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {"exact_match": exact_match(model, self.task, n=self.n_eval)}

    def model_spec(self, config: RunConfig) -> dict:
        return transformer_spec(transformer_arguments(self.task, config.d_model, config.n_heads, config.n_layers,
                                                      config.d_ff, config.dropout))

    def codec(self) -> Codec:
        return SymbolCodec(self.task.n_symbols, self.task.seq_len)


@dataclass
class TextTask:
    """A decoder-only task (addition or language modelling) trained with :func:`next_token_loss`."""

    task: AdditionTask | LanguageModelTask
    stop: str | None = None  # the text that ends an answer, if any

    def batch(self, batch_size: int, seed: int) -> Batch:
        return self.task.batch(batch_size, seed)

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Tensor:
        return next_token_loss(model, batch, smoothing)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.task.evaluate(model)

    def model_spec(self, config: RunConfig) -> dict:
        return gpt_spec(gpt_config(self.task, config.d_model, config.n_layers, config.n_heads, config.d_ff,
                                   config.dropout))

    def codec(self) -> Codec:
        return TextCodec(self.task.tokenizer, self.stop)


def _symbol_task(name: str) -> Callable[[RunConfig], TrainingTask]:
    return lambda config: SymbolTask(Seq2SeqTask(name, config.seq_len, config.n_symbols))


def _addition_task(chain_of_thought: bool) -> Callable[[RunConfig], TrainingTask]:
    def build(config: RunConfig) -> TrainingTask:
        train_digits = tuple(range(1, config.digits + 1))
        test_digits = tuple(range(1, (config.test_digits or config.digits) + 1))
        return TextTask(AdditionTask(chain_of_thought, train_digits, test_digits), stop=TERMINATOR)

    return build


def _language_model_task(config: RunConfig) -> TrainingTask:
    task = LanguageModelTask.from_corpus(config.tokenizer, config.vocab_size, config.corpus_chars, config.block_size)
    return TextTask(task)


BUILDERS: dict[str, Callable[[RunConfig], TrainingTask]] = {
    "reverse": _symbol_task("reverse"),
    "copy": _symbol_task("copy"),
    "addition": _addition_task(False),
    "addition-cot": _addition_task(True),
    "lm": _language_model_task,
}
"""How each task of ``TASKS`` is built from its settings."""


# ------------------------------------------------------------------- the run


def run_training(config: RunConfig, progress: bool = True) -> dict | None:
    """Train ``config.task``, write checkpoint, summary and loss plot; return the summary.

    With ``config.resume`` an existing checkpoint in ``config.out_dir`` is continued
    exactly where it stopped. Under ``torchrun`` all processes train together; rank 0
    writes the outputs and returns the summary, the other ranks return ``None``.
    """
    task = BUILDERS[config.task](config)
    with process_group(config.device) as group:
        torch.manual_seed(config.seed)
        model = model_from_spec(task.model_spec(config)).to(group.device)
        result = _train(config, task, group, model, progress and group.is_main)
        if not group.is_main:
            return None
        summary = make_summary(config, TASKS[config.task].target, model, result, group)
        write_outputs(config.out_dir, summary, result)
    return summary


def _train(config: RunConfig, task: TrainingTask, group: ProcessGroup, model: nn.Module,
           progress: bool) -> TrainResult:
    next_batch = seeded_batches(task.batch, config.batch_size, config.seed)
    metadata = run_metadata(asdict(config), task.model_spec(config), task.codec())
    return train(
        group.wrap(model), group.shard(next_batch), partial(task.loss, smoothing=config.label_smoothing),
        steps=config.steps, lr=config.lr, schedule=config.schedule, warmup=config.warmup,
        weight_decay=config.weight_decay, grad_clip=config.grad_clip, device=group.device, amp=config.amp,
        eval_fn=task.evaluate, eval_every=config.evaluations_every,
        checkpoint=config.out_dir / CHECKPOINT, checkpoint_every=config.checkpoint_every or config.evaluations_every,
        resume=config.resume, progress=progress, metadata=metadata,
    )


def make_summary(config: RunConfig, target: Target, model: nn.Module, result: TrainResult,
                 group: ProcessGroup) -> dict:
    """The JSON summary of a finished run."""
    final = {key: value for key, value in result.evals[-1].items() if key != "step"}
    throughput = [record["tokens_per_s"] for record in result.history[1:]]  # step 1 includes warm-up
    return {
        "task": config.task,
        "out": str(config.out_dir),
        "parameters": count_parameters(model),
        "device": str(group.device),
        "processes": group.world_size,
        "steps": result.steps,
        "seconds": result.seconds,
        "tokens_per_s": statistics.median(throughput) if throughput else math.nan,
        "final_loss": result.final_loss,
        "metrics": final,
        "target": str(target),
        "target_met": target.met_by(final),
        "evals": result.evals,
        "config": asdict(config),
    }


def write_outputs(out_dir: Path, summary: dict, result: TrainResult) -> None:
    """``summary.json`` and ``loss.png`` beside the checkpoint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    plot_history(result, summary["target"]).savefig(out_dir / LOSS_PLOT, dpi=120, bbox_inches="tight")


def plain_log_ticks(axes: Axes) -> None:
    """Label a logarithmic y axis with plain decimals (2.50) instead of powers (2.5 x 10^0)."""
    axes.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    axes.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))


def plot_history(result: TrainResult, title: str = "") -> Figure:
    """Training loss (log scale) and every evaluated metric against the step."""
    figure = Figure(figsize=(10, 4))
    loss_axes, metric_axes = figure.subplots(1, 2)
    loss_axes.plot([r["step"] for r in result.history], [r["loss"] for r in result.history], linewidth=1)
    loss_axes.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    plain_log_ticks(loss_axes)
    steps = [entry["step"] for entry in result.evals]
    metric_names = [key for key in result.evals[0] if key != "step"] if result.evals else []
    for name in metric_names:
        metric_axes.plot(steps, [entry[name] for entry in result.evals], marker="o", label=name)
    metric_axes.set(xlabel="step", title=f"evaluation (target: {title})" if title else "evaluation")
    metric_axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
