"""Codecs: how the prompt of a trained model becomes token ids, and generated ids become text again.

- :class:`SymbolCodec`: the encoder-decoder tasks; a prompt is symbols ``0 .. n_symbols - 1``
  separated by spaces, e.g. ``"3 1 4 1 5"``, and decoding starts from ``BOS``.
- :class:`TextCodec`: the GPT tasks; a prompt is text in the tokenizer's vocabulary, and decoding
  continues it (stopping at the ``stop`` text, if the task has one).

A run stores its codec as plain values (``codec.spec()``); :func:`codec_from_spec` rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tfcourse.data import BOS_ID, EOS_ID, FIRST_SYMBOL_ID
from tfcourse.generation import StepLogits, decoder_only_step, seq2seq_step
from tfcourse.gpt_tasks import Tokenizer, tokenizer_from_state, tokenizer_state


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

    def spec(self) -> dict:
        """Plain values for a checkpoint; :func:`codec_from_spec` rebuilds the codec from them."""
        return {"kind": "symbols", "n_symbols": self.n_symbols, "seq_len": self.seq_len}

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

    def spec(self) -> dict:
        """Plain values for a checkpoint; :func:`codec_from_spec` rebuilds the codec from them."""
        return {"kind": "text", "tokenizer": tokenizer_state(self.tokenizer), "stop": self.stop}

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
        return Prepared(decoder_only_step(model), torch.tensor(ids, device=device), self.stop_id,
                        model.config.block_size)

    def render(self, ids: list[int]) -> str:
        """Generated ids (up to and including the stop token) as text."""
        stop_id = self.stop_id
        if stop_id is not None and stop_id in ids:
            ids = ids[: ids.index(stop_id) + 1]
        return self.tokenizer.decode(ids)


Codec = SymbolCodec | TextCodec


def codec_from_spec(spec: dict) -> Codec:
    """The codec whose :meth:`spec` gave ``spec``."""
    if spec["kind"] == "symbols":
        return SymbolCodec(spec["n_symbols"], spec["seq_len"])
    return TextCodec(tokenizer_from_state(spec["tokenizer"]), spec["stop"])
