"""Training: the label-smoothed loss, learning-rate schedules and a resumable loop.

The loop is deliberately small, in the spirit of nanoGPT: AdamW, a per-step
learning-rate schedule, gradient clipping, optional mixed precision, periodic
evaluation and atomic checkpoints that let an interrupted run resume exactly
where it stopped.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from tfcourse.distributed import is_main_process, mean_across_processes, resolve_device, unwrap, world_size
from tfcourse.settings import SCHEDULES

Batch = tuple[Tensor, ...]

# AdamW betas from "Attention Is All You Need" (section 5.3).
ADAM_BETAS = (0.9, 0.98)
# The cosine schedule decays to this fraction of the peak learning rate, as nanoGPT does.
MIN_LR_FRACTION = 0.1


# --------------------------------------------------------------------------- loss


def label_smoothing_loss(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, ignore_index: int = -100
) -> Tensor:
    """Cross-entropy against a label-smoothed target distribution.

    Args:
        logits: ``(..., V)`` unnormalised scores over ``V`` classes, e.g.
            ``(B, T, V)`` or already flattened ``(N, V)``.
        target: ``(...)`` class indices matching ``logits.shape[:-1]``;
            positions equal to ``ignore_index`` are skipped.
        smoothing: ``eps``, the probability mass moved off the true class.
        ignore_index: target value marking positions that do not count.

    Returns:
        A scalar: the mean over the ``N`` kept positions of

            loss_i = -sum_v q_i(v) log p_i(v),   p_i = softmax(logits_i),
            q_i(v) = (1 - eps) [v = y_i] + eps / V,

        i.e. ``(1 - eps) * (-log p_i(y_i)) + eps * mean_v(-log p_i(v))``.
        This is exactly ``F.cross_entropy(..., label_smoothing=eps)``, except when
        every position is ignored: ``F.cross_entropy`` then returns NaN (0 / 0)
        while this returns 0, so that an all-padding batch does not poison training.
        With ``eps = 0`` the uniform term is left out, so ``-inf`` logits (banned
        tokens) give the finite cross-entropy rather than ``0 * inf = NaN``.
    """
    vocab_size = logits.size(-1)
    log_probs = F.log_softmax(logits.reshape(-1, vocab_size), dim=-1)  # (N, V)
    target = target.reshape(-1)  # (N,)
    keep = target != ignore_index
    safe_target = target.masked_fill(~keep, 0).unsqueeze(-1)  # (N, 1), any valid class where ignored
    nll = -log_probs.gather(-1, safe_target).squeeze(-1)  # (N,)
    per_position = nll
    if smoothing:
        uniform = -log_probs.mean(dim=-1)  # (N,)
        per_position = (1.0 - smoothing) * nll + smoothing * uniform
    total = torch.where(keep, per_position, 0.0).sum()
    return total / keep.sum().clamp(min=1)


# ---------------------------------------------------------------- LR schedules


def noam_lr(step: int, d_model: int, warmup: int) -> float:
    """The learning rate of "Attention Is All You Need" (equation 3).

        lr(step) = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)

    It grows linearly for ``warmup`` steps, peaks at ``step == warmup`` with value
    ``(d_model * warmup)^-0.5``, then decays as ``step^-0.5``. Steps count from 1
    as in the paper; step 0 is treated as step 1 (``0^-0.5`` is undefined).
    ``warmup`` must be positive.
    """
    step = max(step, 1)
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def warmup_cosine_lr(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """Linear warm-up to ``max_lr`` then cosine decay to ``min_lr``.

        lr(t) = max_lr * t / warmup                                  for t < warmup
        lr(t) = min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2   for warmup <= t <= total
        lr(t) = min_lr                                               for t > total

    with ``r = (t - warmup) / (total - warmup)`` the fraction of the decay done.
    """
    if step < warmup:
        return max_lr * step / warmup
    if step > total:
        return min_lr
    decay_fraction = (step - warmup) / max(total - warmup, 1)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * decay_fraction))


def lr_schedule(name: str, peak_lr: float, warmup: int, total: int) -> Callable[[int], float]:
    """The learning rate as a function of the 1-based step, for ``train``.

    - ``"constant"``: ``peak_lr`` throughout.
    - ``"cosine"``: ``warmup_cosine_lr`` decaying to ``MIN_LR_FRACTION * peak_lr`` at ``total``.
    - ``"noam"``: the shape of ``noam_lr``, rescaled so that its peak (at
      ``warmup``) equals ``peak_lr``; ``d_model`` only scales the curve, so it
      cancels out.
    """
    if name == "constant":
        return lambda step: peak_lr
    if name == "cosine":
        return lambda step: warmup_cosine_lr(step, peak_lr, warmup, total, MIN_LR_FRACTION * peak_lr)
    if name == "noam":
        warmup = max(warmup, 1)
        peak = noam_lr(warmup, d_model=1, warmup=warmup)
        return lambda step: peak_lr * noam_lr(step, d_model=1, warmup=warmup) / peak
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(map(repr, SCHEDULES))}")


# ------------------------------------------------------------ optimiser, AMP


def configure_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with betas ``ADAM_BETAS`` (0.9, 0.98), as in the original Transformer.

    As in nanoGPT, weight decay applies only to parameters with ``dim >= 2``
    (weight matrices and embeddings); biases and normalisation gains are not
    shrunk towards zero.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=ADAM_BETAS)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision dtype for ``device``.

    bfloat16 where supported (every CPU, recent GPUs); float16 on older CUDA
    GPUs, which then needs a ``GradScaler`` because float16 gradients underflow.
    """
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


# ----------------------------------------------------------------- checkpoints


def _rng_states() -> dict:
    """Every random-number generator the loop may draw from."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate()}


def _restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])


def _atomic_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place.

    ``os.replace`` is atomic, so ``path`` always holds either the previous
    checkpoint or the complete new one, never a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    step: int,
    history: list[dict[str, float]],
    evals: list[dict[str, float]],
    metadata: dict | None = None,
) -> None:
    """Atomically write everything needed to resume training at ``step``.

    Holds the model, optimiser and grad-scaler states, the step count, the
    history and evaluations so far, and the RNG states (torch CPU, CUDA if
    present, Python ``random``) so that dropout draws continue identically.
    ``metadata`` (plain Python values: how to rebuild the model and its
    tokenizer, say) is stored as is.
    """
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "history": history,
        "evals": evals,
        "rng": _rng_states(),
        "metadata": metadata or {},
    }
    _atomic_save(checkpoint, Path(path))


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict:
    """Load the states saved by ``save_checkpoint`` into ``model`` (and optimiser, scaler).

    Tensors are loaded onto the CPU and copied to wherever ``model`` lives.
    Returns the checkpoint dict (``step``, ``history``, ``evals``, ``rng``, ``metadata``, ...);
    RNG states are not restored here. Raises ``ValueError`` if the checkpoint
    was saved from a model with different parameter names or shapes.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise ValueError(f"checkpoint {path} was saved from a different model:\n{error}") from error
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    return checkpoint


# -------------------------------------------------------------------- batches


def batch_seed(seed: int, step: int) -> int:
    """The seed of the batch of the 0-based ``step`` of a run seeded with ``seed``.

        batch_seed(seed, step) = seed * 1_000_003 + step

    A function of the step, so that a resumed run sees the batches it would have seen;
    1_000_003 (a prime) exceeds the steps of any run, so runs with different seeds share no batch.
    """
    return seed * 1_000_003 + step


def seeded_batches(draw: Callable[[int, int], Batch], batch_size: int, seed: int) -> Callable[[int], Batch]:
    """``next_batch`` for :func:`train`: update ``i`` trains on ``draw(batch_size, batch_seed(seed, i))``.

    ``draw(batch_size, seed)`` is a task's batch as a function of a seed only, e.g.
    ``AdditionTask.batch`` or ``Seq2SeqTask.seeded_batch``.
    """
    return lambda step: draw(batch_size, batch_seed(seed, step))


# ------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    """What ``train`` returns.

    ``history`` has one dict per step (``step``, ``loss``, ``lr``, ``grad_norm``,
    ``tokens_per_s``, plus the evaluation metrics on steps that were evaluated);
    ``evals`` has one dict per evaluation (``step`` plus the metrics);
    ``steps`` is the number of optimiser steps completed, ``seconds`` the wall
    time of this call.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    final_loss: float = math.nan
    steps: int = 0
    seconds: float = 0.0


@dataclass
class _Trainer:
    """Everything one optimisation step needs, built once by ``train``."""

    model: nn.Module
    next_batch: Callable[[int], Batch]
    compute_loss: Callable[[nn.Module, Batch], Tensor]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    lr_at: Callable[[int], float]
    amp_dtype: torch.dtype | None
    grad_clip: float | None
    device: torch.device
    metadata: dict | None = None

    def run_step(self, step: int) -> dict[str, float]:
        """Take the 1-based ``step``-th update; return its history record."""
        tick = time.perf_counter()
        batch = tuple(tensor.to(self.device) for tensor in self.next_batch(step - 1))
        lr = self.lr_at(step)
        loss, grad_norm = self.update(batch, lr)
        tokens_per_s = world_size() * batch[0].numel() / (time.perf_counter() - tick)
        return {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens_per_s}

    def update(self, batch: Batch, lr: float) -> tuple[float, float]:
        """One AdamW update at learning rate ``lr``; returns ``(loss, grad_norm)``.

        The gradient norm is measured before clipping, on unscaled gradients. When
        training distributed, the loss returned is the mean over all processes.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = self.compute_loss(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.grad_clip if self.grad_clip else math.inf
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return mean_across_processes(loss.detach()).item(), grad_norm.item()

    def save(self, path: str | os.PathLike, result: TrainResult) -> None:
        """Checkpoint the run after ``result.steps`` updates (only the main process writes)."""
        if not is_main_process():
            return
        state = (unwrap(self.model), self.optimizer, self.scaler)
        save_checkpoint(path, *state, step=result.steps, history=result.history, evals=result.evals,
                        metadata=self.metadata)

    def resume(self, path: str | os.PathLike) -> TrainResult:
        """Load ``path``, restore the RNG states and return the run so far."""
        checkpoint = load_checkpoint(path, unwrap(self.model), self.optimizer, self.scaler)
        _restore_rng_states(checkpoint["rng"])
        history = checkpoint["history"]
        final_loss = history[-1]["loss"] if history else math.nan
        return TrainResult(
            history=history, evals=checkpoint["evals"], final_loss=final_loss, steps=checkpoint["step"]
        )


def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
    """``eval_fn(model)`` in eval mode under ``torch.no_grad``, then back to train mode.

    A ``DistributedDataParallel`` wrapper is removed: ``eval_fn`` sees the model itself.
    """
    model = unwrap(model)
    model.eval()
    with torch.no_grad():
        metrics = eval_fn(model)
    model.train()
    return {name: float(value) for name, value in metrics.items()}


def _is_due(step: int, every: int | None, last_step: int) -> bool:
    """True every ``every`` steps and at the last step."""
    return step == last_step or (every is not None and step % every == 0)


def _show_progress(bar: tqdm, record: dict[str, float]) -> None:
    """Loss, learning rate and throughput on the bar (redrawn at tqdm's own pace)."""
    loss, lr, tokens_per_s = record["loss"], record["lr"], record["tokens_per_s"]
    bar.set_postfix({"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:.0f}"}, refresh=False)


def train(
    model: nn.Module,
    next_batch: Callable[[int], Batch],
    compute_loss: Callable[[nn.Module, Batch], Tensor],
    *,
    steps: int,
    lr: float = 3e-4,
    schedule: str = "cosine",
    warmup: int | None = None,
    weight_decay: float = 0.01,
    grad_clip: float | None = 1.0,
    device: str | torch.device | None = None,
    amp: bool = False,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[dict[str, float]], None] | None = None,
    metadata: dict | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` AdamW steps.

    Args:
        next_batch: ``next_batch(i)`` returns the batch for the update with
            0-based index ``i`` (a tuple of tensors, moved to ``device``). Making
            it a function of ``i`` means a resumed run sees the same batches.
        compute_loss: ``compute_loss(model, batch)`` returns a scalar loss.
        steps: total number of updates, counting those done before a resume.
        lr: peak learning rate; ``schedule`` (see ``lr_schedule``) shapes it
            over the 1-based step ``t``, with ``warmup`` steps of warm-up
            (default: 10% of ``steps``).
        weight_decay: AdamW decay on >= 2-D parameters (``configure_optimizer``).
        grad_clip: max global gradient norm; ``None`` or 0 disables clipping.
        device: where to train (see ``resolve_device``; default CUDA when
            available, else CPU). The model is moved there.
        amp: autocast to ``autocast_dtype(device)``: bfloat16 on CPU and on
            GPUs that support it, else float16 with a ``GradScaler``.
        eval_fn: ``eval_fn(model) -> metrics``, run every ``eval_every`` steps
            (default: never) and after the last step (see ``evaluate``). The
            metrics join that step's history record and ``TrainResult.evals``.
        stop_when: ``stop_when(metrics) -> bool``, asked after each evaluation:
            when true the run ends there, before ``steps`` (default: never). The
            schedule still spans ``steps``; ``TrainResult.steps`` counts the updates done.
        checkpoint: path written every ``checkpoint_every`` steps (default:
            never) and after the last step, or the step ``stop_when`` ended the
            run at (see ``save_checkpoint``).
        resume: continue from ``checkpoint`` if that file exists, else start fresh.
        progress: show a tqdm bar with loss, learning rate and tokens/s
            (tokens counted as ``batch[0].numel()``).
        log: called with each step's history dict.
        metadata: plain Python values stored in every checkpoint.

    Distributed (see :mod:`tfcourse.distributed`): pass the model wrapped in
    ``DistributedDataParallel`` and each process's shard of the batches; the
    recorded loss is the mean over processes, tokens/s counts all of them, and
    only rank 0 writes checkpoints.

    History steps are 1-based: entry ``t`` records the ``t``-th update.
    """
    device = resolve_device(device)
    model.to(device).train()
    amp_dtype = autocast_dtype(device) if amp else None
    trainer = _Trainer(
        model=model,
        next_batch=next_batch,
        compute_loss=compute_loss,
        optimizer=configure_optimizer(model, lr, weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        lr_at=lr_schedule(schedule, lr, steps // 10 if warmup is None else warmup, steps),
        amp_dtype=amp_dtype,
        grad_clip=grad_clip,
        device=device,
        metadata=metadata,
    )
    resuming = resume and checkpoint is not None and Path(checkpoint).exists()
    result = trainer.resume(checkpoint) if resuming else TrainResult()
    started = time.perf_counter()
    bar = tqdm(range(result.steps + 1, steps + 1), initial=result.steps, total=steps, disable=not progress)
    for step in bar:
        record = trainer.run_step(step)
        stopping = False
        if eval_fn is not None and _is_due(step, eval_every, steps):
            metrics = evaluate(model, eval_fn)
            record.update(metrics)
            result.evals.append({"step": step, **metrics})
            stopping = stop_when is not None and stop_when(metrics)
        result.history.append(record)
        result.steps, result.final_loss = step, record["loss"]
        if log is not None:
            log(record)
        if checkpoint is not None and (stopping or _is_due(step, checkpoint_every, steps)):
            trainer.save(checkpoint, result)
        _show_progress(bar, record)
        if stopping:
            break
    bar.close()
    result.seconds = time.perf_counter() - started
    return result
