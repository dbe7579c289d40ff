"""Training an encoder-decoder on the toy sequence tasks (reversal and copying).

The decoder is trained with teacher forcing: it reads ``[BOS, y_1, ..., y_n]`` and
predicts ``[y_1, ..., y_n, EOS]``, so one forward pass scores every position. At test
time it decodes greedily from ``BOS`` and a prediction counts only if every token is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tfcourse.data import BOS_ID, EOS_ID, copy_batch, reverse_batch, task_vocab_size
from tfcourse.generation import greedy_decode, seq2seq_step
from tfcourse.model import Transformer
from tfcourse.training import TrainResult, seeded_batches, train

BATCH_FUNCTIONS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {"reverse": reverse_batch, "copy": copy_batch}


@dataclass
class Seq2SeqTask:
    """A toy task: sequences of ``seq_len`` symbols drawn from ``n_symbols``."""

    name: str = "reverse"
    seq_len: int = 8
    n_symbols: int = 10

    @property
    def vocab_size(self) -> int:
        return task_vocab_size(self.n_symbols)

    def batch(self, batch_size: int, generator: torch.Generator, device=None) -> tuple[Tensor, Tensor]:
        """``(src (B, seq_len), tgt (B, seq_len + 2))``, see :func:`tfcourse.data.reverse_batch`."""
        return BATCH_FUNCTIONS[self.name](batch_size, self.seq_len, self.n_symbols, generator, device)

    def seeded_batch(self, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        """:meth:`batch` drawn with a CPU generator seeded with ``seed``: a batch as a function of a seed."""
        return self.batch(batch_size, torch.Generator().manual_seed(seed))


def transformer_arguments(task: Seq2SeqTask, d_model: int, n_heads: int, n_layers: int, d_ff: int | None = None,
                          dropout: float = 0.0) -> dict:
    """The constructor arguments of a pre-LN :class:`Transformer` sized for ``task``.

    ``d_ff=None`` means ``2 * d_model``; the context holds the target with BOS and EOS (``seq_len + 2``).
    """
    return dict(src_vocab=task.vocab_size, tgt_vocab=task.vocab_size, d_model=d_model, n_heads=n_heads,
                n_layers=n_layers, d_ff=d_ff or 2 * d_model, dropout=dropout, norm_first=True,
                max_len=task.seq_len + 2, fused=True)


def teacher_forcing_loss(model: Transformer, batch: tuple[Tensor, Tensor], smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of predicting ``tgt[:, 1:]`` from ``src`` and ``tgt[:, :-1]``."""
    src, tgt = batch
    logits = model(src, tgt[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), label_smoothing=smoothing)


@torch.no_grad()
def exact_match(model: Transformer, task: Seq2SeqTask, n: int = 500, seed: int = 1234) -> float:
    """Fraction of ``n`` fresh examples whose greedy decoding equals the target exactly."""
    model.eval()
    device = next(model.parameters()).device
    src, tgt = task.batch(n, torch.Generator().manual_seed(seed), device)
    start = torch.full((n, 1), BOS_ID, dtype=torch.long, device=device)
    decoded = greedy_decode(seq2seq_step(model, src), start, tgt.size(1) - 1, eos_id=EOS_ID)
    decoded = F.pad(decoded, (0, tgt.size(1) - decoded.size(1)), value=EOS_ID)  # every row stopped early
    return (decoded == tgt).all(dim=1).float().mean().item()


def train_seq2seq(
    task: Seq2SeqTask,
    steps: int = 600,
    batch_size: int = 64,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    lr: float = 3e-3,
    seed: int = 0,
    **train_options,
) -> tuple[Transformer, TrainResult]:
    """A small :class:`Transformer` trained on ``task``; evaluated by :func:`exact_match` at the end.

    ``seed`` seeds the initial weights and, through :func:`~tfcourse.training.batch_seed`, the batches.
    """
    torch.manual_seed(seed)
    model = Transformer(**transformer_arguments(task, d_model, n_heads, n_layers))
    result = train(model, seeded_batches(task.seeded_batch, batch_size, seed), teacher_forcing_loss, steps=steps,
                   lr=lr, eval_fn=lambda m: {"exact_match": exact_match(m, task)}, **train_options)
    return model, result
