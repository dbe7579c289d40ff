"""Decoding with a trained run: load its checkpoint, then greedy, sampled or beam-searched output.

A run's folder (:mod:`tfcourse.run_folder`) holds the model and its codec
(:mod:`tfcourse.codec`: how prompts become ids and ids become text).

Strategies: ``greedy`` (arg-max), ``sample`` (temperature, top-k and top-p as in
:func:`~tfcourse.generation.sample_next`) and ``beam`` (:func:`~tfcourse.generation.beam_search`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tfcourse.codec import Codec, Prepared
from tfcourse.decoding import Decoding
from tfcourse.distributed import resolve_device
from tfcourse.generation import StepLogits, beam_search, decode_tokens, greedy_decode, sample_next
from tfcourse.run_folder import load_run


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
    codec: Codec
    config: dict

    def complete(self, prompt: str, decoding: Decoding = Decoding()) -> list[str]:
        """The model's output(s) for ``prompt``: one per sample, decoded to text."""
        self.model.eval()
        return [self.codec.render(ids) for ids in decode(self.codec.prepare(self.model, prompt), decoding)]


def load_trained(path: str | os.PathLike, device: str | torch.device | None = None) -> TrainedModel:
    """Rebuild the model of a run from its checkpoint file (or the run's output folder) on ``device``.

    ``device`` as for :func:`~tfcourse.distributed.resolve_device`: by default CUDA when available, else CPU.
    """
    run = load_run(path)
    return TrainedModel(run.model.to(resolve_device(device)).eval(), run.codec, run.config)
