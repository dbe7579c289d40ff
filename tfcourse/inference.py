"""Decoding with a trained run: load its checkpoint, then greedy, sampled or beam-searched output.

A checkpoint written by :mod:`tfcourse.runs` carries, besides the weights, the model's
constructor arguments (``"model"``) and how prompts become ids (``"codec"``):

- ``symbols``: the encoder-decoder tasks; a prompt is symbols ``0 .. n_symbols - 1``
  separated by spaces, e.g. ``"3 1 4 1 5"``, and decoding starts from ``BOS``.
- ``text``: the GPT tasks; a prompt is text in the tokenizer's vocabulary, and decoding
  continues it (stopping at the ``stop`` text, if the task has one).

Strategies: ``greedy`` (arg-max), ``sample`` (temperature, top-k and top-p as in
:func:`~tfcourse.generation.sample_next`) and ``beam`` (:func:`~tfcourse.generation.beam_search`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from tfcourse.data import BOS_ID, EOS_ID, FIRST_SYMBOL_ID
from tfcourse.distributed import resolve_device
from tfcourse.generation import StepLogits, beam_search, decode_tokens, greedy_decode, sample_next, seq2seq_step
from tfcourse.gpt_tasks import Tokenizer, tokenizer_from_state
from tfcourse.model import GPT, GPTConfig, Transformer
from tfcourse.settings import check_choices, setting

STRATEGIES = ("greedy", "sample", "beam")
CHECKPOINT = "checkpoint.pt"  # the file name of a run's checkpoint in its output folder


def model_from_spec(spec: dict) -> nn.Module:
    """A fresh ``Transformer`` or ``GPT`` from ``{"kind": ..., **constructor arguments}``."""
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    if spec["kind"] == "gpt":
        return GPT(GPTConfig(**arguments))
    if spec["kind"] == "transformer":
        return Transformer(**arguments)
    raise ValueError(f"unknown model kind {spec['kind']!r}; expected 'gpt' or 'transformer'")


@dataclass(frozen=True)
class Decoding:
    """How to choose tokens. ``max_new_tokens=None`` lets the task decide."""

    strategy: str = setting("greedy", "how each token is chosen", STRATEGIES)
    max_new_tokens: int | None = setting(None, "tokens to generate at most "
                                               "(default: the task's answer length or the context)")
    temperature: float = setting(1.0, "sample: divide the logits by this")
    top_k: int | None = setting(None, "sample: only from the K most likely tokens")
    top_p: float | None = setting(None, "sample: only from the nucleus of mass P")
    beam_width: int = setting(4, "beam: beams kept")
    length_penalty: float = setting(1.0, "beam: score / length**PENALTY")
    samples: int = setting(1, "sample: outputs to draw")
    seed: int = setting(0, "sample: seed of the random draws")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.samples > 1 and self.strategy != "sample":
            raise ValueError(f"only sampling gives different outputs; {self.strategy} gives one, use samples=1")


@dataclass(frozen=True)
class Prepared:
    """A prompt ready to decode: the step function, the prefix ``(t,)``, EOS and a default length."""

    step: StepLogits
    prefix: Tensor
    eos_id: int | None
    max_new_tokens: int


@dataclass(frozen=True)
class SymbolCodec:
    """Space-separated symbols in, symbols out; the encoder-decoder reads the prompt as its source."""

    n_symbols: int
    seq_len: int

    def prepare(self, model: nn.Module, prompt: str) -> Prepared:
        device = next(model.parameters()).device
        symbols = self.parse(prompt)
        src = torch.tensor([[FIRST_SYMBOL_ID + s for s in symbols]], device=device)
        start = torch.tensor([BOS_ID], device=device)
        return Prepared(seq2seq_step(model, src), start, EOS_ID, len(symbols) + 1)

    def parse(self, prompt: str) -> list[int]:
        """``"3 1 4"`` -> ``[3, 1, 4]``, or a ``ValueError`` saying what is wrong with the prompt."""
        words = prompt.split()
        if not words or not all(word.isdigit() for word in words):
            raise ValueError(f"the prompt must be symbols 0..{self.n_symbols - 1} separated by spaces, "
                             f"e.g. '3 1 4 1 5'; got {prompt!r}")
        symbols = [int(word) for word in words]
        if max(symbols) >= self.n_symbols:
            raise ValueError(f"symbol {max(symbols)} is out of range: this model knows 0..{self.n_symbols - 1}")
        if len(symbols) > self.seq_len:
            raise ValueError(f"the model was trained on {self.seq_len} symbols; give at most that many")
        return symbols

    def render(self, ids: list[int]) -> str:
        """Generated ids (up to EOS) as the symbols they stand for."""
        ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
        return " ".join(str(i - FIRST_SYMBOL_ID) for i in ids if i >= FIRST_SYMBOL_ID)


@dataclass(frozen=True)
class TextCodec:
    """Text in, text out; the GPT continues the prompt (at most ``block_size`` tokens in view)."""

    tokenizer: Tokenizer
    stop: str | None

    @property
    def stop_id(self) -> int | None:
        return None if self.stop is None else self.tokenizer.encode(self.stop)[-1]

    def prepare(self, model: nn.Module, prompt: str) -> Prepared:
        device = next(model.parameters()).device
        try:
            ids = self.tokenizer.encode(prompt)
        except ValueError as error:
            raise ValueError(f"the prompt cannot be encoded with this model's tokenizer: {error}") from error
        if not ids:
            raise ValueError("the prompt is empty; a GPT needs at least one token to continue")
        block_size = model.config.block_size

        def step(tokens: Tensor) -> Tensor:
            return model(tokens[:, -block_size:])[:, -1]

        return Prepared(step, torch.tensor(ids, device=device), self.stop_id, block_size)

    def render(self, ids: list[int]) -> str:
        """Generated ids (up to and including the stop token) as text."""
        stop_id = self.stop_id
        if stop_id is not None and stop_id in ids:
            ids = ids[: ids.index(stop_id) + 1]
        return self.tokenizer.decode(ids)


def codec_from_spec(spec: dict) -> SymbolCodec | TextCodec:
    if spec["kind"] == "symbols":
        return SymbolCodec(spec["n_symbols"], spec["seq_len"])
    return TextCodec(tokenizer_from_state(spec["tokenizer"]), spec["stop"])


def sample_decode(step: StepLogits, prefix: Tensor, max_new_tokens: int, eos_id: int | None = None,
                  generator: torch.Generator | None = None, **sampling) -> Tensor:
    """Like :func:`~tfcourse.generation.greedy_decode`, but each token drawn with :func:`sample_next`.

    ``prefix``: ``(batch, t)`` -> ``(batch, t + n)``; rows that finished early are padded with EOS.
    """
    return decode_tokens(step, prefix, max_new_tokens,
                         lambda logits: sample_next(logits, generator=generator, **sampling), eos_id)


def decode(prepared: Prepared, decoding: Decoding) -> list[list[int]]:
    """The generated ids (prefix removed) of each of ``decoding.samples`` outputs."""
    start, max_new = prepared.prefix.numel(), decoding.max_new_tokens or prepared.max_new_tokens
    if decoding.strategy == "beam":
        best = beam_search(prepared.step, prepared.prefix, decoding.beam_width, max_new, prepared.eos_id,
                           decoding.length_penalty)
        return [best[start:].tolist()]
    prefixes = prepared.prefix.repeat(decoding.samples, 1)
    if decoding.strategy == "greedy":
        out = greedy_decode(prepared.step, prefixes, max_new, prepared.eos_id)
    else:
        generator = torch.Generator(prefixes.device).manual_seed(decoding.seed)
        out = sample_decode(prepared.step, prefixes, max_new, prepared.eos_id, generator,
                            temperature=decoding.temperature, top_k=decoding.top_k, top_p=decoding.top_p)
    return out[:, start:].tolist()


@dataclass
class TrainedModel:
    """A trained model with its codec and the settings it was trained with."""

    model: nn.Module
    codec: SymbolCodec | TextCodec
    config: dict

    def complete(self, prompt: str, decoding: Decoding = Decoding()) -> list[str]:
        """The model's output(s) for ``prompt``: one per sample, decoded to text."""
        self.model.eval()
        return [self.codec.render(ids) for ids in decode(self.codec.prepare(self.model, prompt), decoding)]


def load_trained(path: str | os.PathLike, device: str | torch.device | None = None) -> TrainedModel:
    """Rebuild the model of a run from its checkpoint file (or the run's output folder) on ``device``.

    ``device`` as for :func:`~tfcourse.distributed.resolve_device`: by default CUDA when available, else CPU.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `tfcourse train TASK --out DIR`")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    metadata = checkpoint.get("metadata") or {}
    if "model" not in metadata:
        raise ValueError(f"{path} does not say how to rebuild its model; was it written by `tfcourse train`?")
    model = model_from_spec(metadata["model"])
    model.load_state_dict(checkpoint["model"])
    model = model.to(resolve_device(device)).eval()
    return TrainedModel(model, codec_from_spec(metadata["codec"]), metadata["config"])
