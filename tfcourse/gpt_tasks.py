"""Decoder-only tasks: multi-digit addition (direct or with a scratchpad) and language modelling.

Both train a :class:`~tfcourse.model.GPT` on next-token prediction. An addition example is
the text ``prompt + target`` (see :mod:`tfcourse.reasoning`), e.g. ``"58+67=125."``; the
model reads it shifted by one and is scored only on the target characters::

    x  5 8 + 6 7 = 1 2 5
    y  . . . . . 1 2 5 .      ("." at a prompt position means "not scored")

A language model is scored on every position of random windows of the corpus.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.data import lm_batches, load_corpus
from tfcourse.generation import generate
from tfcourse.model import GPT, GPTConfig
from tfcourse.reasoning import TERMINATOR, extract_answer, make_addition_example
from tfcourse.settings import TOKENIZERS
from tfcourse.tokenize import BPETokenizer, CharTokenizer, train_bpe

# Target value of positions that are not scored (``F.cross_entropy``'s default).
IGNORE_INDEX = -100
# Every character an addition example can contain.
ADDITION_ALPHABET = "0123456789+=,."

Tokenizer = CharTokenizer | BPETokenizer
Batch = tuple[Tensor, Tensor]


def next_token_loss(model: nn.Module, batch: Batch, smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of ``model(x) (B, T, V)`` against ``y (B, T)``; ``IGNORE_INDEX`` is skipped."""
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX, label_smoothing=smoothing)


# ------------------------------------------------------------------ tokenizers


def tokenizer_state(tokenizer: Tokenizer) -> dict:
    """A JSON-serialisable description of ``tokenizer`` for :func:`tokenizer_from_state`."""
    if isinstance(tokenizer, CharTokenizer):
        return {"kind": "char", "chars": "".join(tokenizer.chars)}
    merges = [[left, right, new_id] for (left, right), new_id in tokenizer.merges.items()]
    return {"kind": "bpe", "merges": merges}


def tokenizer_from_state(state: dict) -> Tokenizer:
    """The tokenizer described by :func:`tokenizer_state`."""
    if state["kind"] == "char":
        return CharTokenizer(state["chars"])
    return BPETokenizer({(left, right): new_id for left, right, new_id in state["merges"]})


def gpt_config(task: AdditionTask | LanguageModelTask, d_model: int, n_layers: int, n_heads: int,
               d_ff: int | None = None, dropout: float = 0.0) -> GPTConfig:
    """The configuration of a :class:`GPT` sized for ``task``'s vocabulary and context.

    ``d_ff=None`` means ``4 * d_model``.
    """
    return GPTConfig(vocab_size=task.tokenizer.vocab_size, block_size=task.block_size, n_layers=n_layers,
                     n_heads=n_heads, d_model=d_model, d_ff=d_ff, dropout=dropout)


@torch.no_grad()
def complete(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
             **sampling) -> list[str]:
    """The text each prompt continues with (``max_new_tokens`` tokens, not cut at any terminator).

    Prompts of equal token length are decoded together with the KV cache; ``sampling``
    goes to :func:`~tfcourse.generation.generate` (``temperature=0`` is greedy).
    """
    device = next(model.parameters()).device
    encoded = [tokenizer.encode(prompt) for prompt in prompts]
    completions = [""] * len(prompts)
    for length in sorted({len(ids) for ids in encoded}):
        rows = [i for i, ids in enumerate(encoded) if len(ids) == length]
        idx = torch.tensor([encoded[i] for i in rows], device=device)
        out = generate(model, idx, max_new_tokens, **sampling)[:, length:]
        for row, ids in zip(rows, out.tolist()):
            completions[row] = tokenizer.decode(ids)
    return completions


# -------------------------------------------------------------------- addition


def random_operand(n_digits: int, rng: random.Random) -> int:
    """A uniform number with exactly ``n_digits`` digits (``0..9`` for one digit)."""
    if n_digits < 1:
        raise ValueError(f"numbers need at least 1 digit, got {n_digits}")
    low = 0 if n_digits == 1 else 10 ** (n_digits - 1)
    return rng.randint(low, 10**n_digits - 1)


def addition_problems(n: int, n_digits: int, rng: random.Random) -> list[tuple[int, int]]:
    """``n`` pairs of operands that both have ``n_digits`` digits."""
    return [(random_operand(n_digits, rng), random_operand(n_digits, rng)) for _ in range(n)]


def longest_target(n_digits: int, chain_of_thought: bool) -> int:
    """Characters in the longest target for ``n_digits``-digit operands (every column carries)."""
    largest = 10**n_digits - 1
    return len(make_addition_example(largest, largest, chain_of_thought)[1])


def encode_examples(tokenizer: Tokenizer, examples: Sequence[tuple[str, str]]) -> Batch:
    """``(prompt, target)`` strings -> ``(x, y)``, both ``(B, T)`` with ``T`` the longest text minus one.

    ``x`` is each text without its last token, padded with the terminator; ``y`` is each
    text without its first token, ``IGNORE_INDEX`` at prompt and padding positions.
    """
    texts = [tokenizer.encode(prompt + target) for prompt, target in examples]
    prompt_lengths = [len(tokenizer.encode(prompt)) for prompt, _ in examples]
    width = max(len(ids) for ids in texts) - 1
    pad_id = tokenizer.encode(TERMINATOR)[0]
    x = [ids[:-1] + [pad_id] * (width - len(ids) + 1) for ids in texts]
    y = [[IGNORE_INDEX] * (start - 1) + ids[start:] + [IGNORE_INDEX] * (width - len(ids) + 1)
         for ids, start in zip(texts, prompt_lengths)]
    return torch.tensor(x), torch.tensor(y)


@dataclass
class AdditionTask:
    """``a+b=`` answered directly or after a column-by-column scratchpad.

    Training problems have a number of digits drawn uniformly from ``train_digits`` (both
    operands have that many digits); ``test_digits`` may include longer numbers.
    """

    chain_of_thought: bool = False
    train_digits: tuple[int, ...] = (1, 2, 3)
    test_digits: tuple[int, ...] = (1, 2, 3)
    n_eval: int = 200
    eval_seed: int = 1234
    tokenizer: CharTokenizer = field(default_factory=lambda: CharTokenizer(ADDITION_ALPHABET))

    def __post_init__(self) -> None:
        if not self.train_digits or min(self.train_digits + tuple(self.test_digits)) < 1:
            raise ValueError(f"digit counts must be >= 1, got train {self.train_digits}, test {self.test_digits}")

    @property
    def block_size(self) -> int:
        """Context needed by the longest example of any digit count used."""
        most = max(self.train_digits + tuple(self.test_digits))
        return 2 * most + 2 + longest_target(most, self.chain_of_thought)

    def examples(self, problems: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
        return [make_addition_example(a, b, self.chain_of_thought) for a, b in problems]

    def batch(self, batch_size: int, seed: int) -> Batch:
        """``batch_size`` fresh training examples, a function of ``seed`` only."""
        rng = random.Random(seed)
        problems = [(random_operand(n, rng), random_operand(n, rng))
                    for n in rng.choices(self.train_digits, k=batch_size)]
        return encode_examples(self.tokenizer, self.examples(problems))

    def eval_problems(self, n_digits: int) -> list[tuple[int, int]]:
        """The fixed evaluation problems with ``n_digits`` digits."""
        return addition_problems(self.n_eval, n_digits, random.Random(self.eval_seed + n_digits))

    def answers(self, model: GPT, problems: Sequence[tuple[int, int]], samples: int = 1,
                **sampling) -> list[list[int | None]]:
        """``samples`` extracted answers per problem (greedy unless ``sampling`` says otherwise)."""
        prompts = [prompt for prompt, _ in self.examples(problems) for _ in range(samples)]
        n_digits = max(len(str(operand)) for problem in problems for operand in problem)
        texts = complete(model, self.tokenizer, prompts, longest_target(n_digits, self.chain_of_thought),
                         **{"temperature": 0.0} | sampling)
        answers = [extract_answer(text) for text in texts]
        return [answers[i * samples:(i + 1) * samples] for i in range(len(problems))]

    def accuracy(self, model: GPT, n_digits: int) -> float:
        """Fraction of the ``n_digits`` evaluation problems answered exactly, decoding greedily."""
        problems = self.eval_problems(n_digits)
        answers = self.answers(model, problems)
        return sum(got == [a + b] for got, (a, b) in zip(answers, problems)) / len(problems)

    def evaluate(self, model: GPT) -> dict[str, float]:
        """``accuracy_<n>`` per test digit count and their mean ``accuracy``."""
        metrics = {f"accuracy_{n}": self.accuracy(model, n) for n in self.test_digits}
        return {"accuracy": sum(metrics.values()) / len(metrics), **metrics}


# ---------------------------------------------------------- language modelling


@dataclass
class LanguageModelTask:
    """Next-token prediction on the offline corpus, split into training and validation text.

    ``train_ids`` and ``val_ids`` are 1-D token streams; validation uses the last
    ``val_fraction`` of the corpus, ``val_chars`` characters long.
    """

    tokenizer: Tokenizer
    train_ids: Tensor
    val_ids: Tensor
    val_chars: int
    block_size: int = 64
    eval_batches: int = 8
    eval_batch_size: int = 32

    @classmethod
    def from_corpus(cls, tokenizer: str = "char", vocab_size: int = 512, max_chars: int | None = 200_000,
                    block_size: int = 64, val_fraction: float = 0.1) -> LanguageModelTask:
        """Tokenize :func:`~tfcourse.data.load_corpus`; ``tokenizer`` is ``"char"`` or ``"bpe"``.

        The BPE tokenizer (``vocab_size`` ids) is trained on the training part only.
        """
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected {' or '.join(map(repr, TOKENIZERS))}")
        text = load_corpus(max_chars)
        split = int(len(text) * (1 - val_fraction))
        trained = CharTokenizer(text) if tokenizer == "char" else train_bpe(text[:split], vocab_size)
        train_ids, val_ids = (torch.tensor(trained.encode(part)) for part in (text[:split], text[split:]))
        if len(val_ids) <= block_size:
            raise ValueError(f"the validation text has {len(val_ids)} tokens, fewer than block_size "
                             f"{block_size}; use more corpus characters or a smaller block size")
        return cls(trained, train_ids, val_ids, len(text) - split, block_size)

    def batch(self, batch_size: int, seed: int) -> Batch:
        """Random training windows ``(x, y)``, each ``(batch_size, block_size)``, a function of ``seed``."""
        return lm_batches(self.train_ids, batch_size, self.block_size, torch.Generator().manual_seed(seed))

    def evaluate(self, model: GPT) -> dict[str, float]:
        """``val_loss``: mean cross-entropy (nats per token) on fixed validation windows.

        ``nats_per_char`` rescales it by the validation text's tokens per character, so
        that character and BPE models compare (the two are equal for characters).
        """
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(0)
        losses = [
            next_token_loss(model, lm_batches(self.val_ids, self.eval_batch_size, self.block_size,
                                              generator, device)).item()
            for _ in range(self.eval_batches)
        ]
        val_loss = sum(losses) / len(losses)
        return {"val_loss": val_loss, "nats_per_char": val_loss * len(self.val_ids) / self.val_chars}
