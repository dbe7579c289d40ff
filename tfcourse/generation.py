"""Turning next-token logits into text: greedy, sampling, top-k, top-p and beam search.

A model maps a prefix to logits for the next token. Decoding strategies differ only in
how they pick from those logits: the arg-max (greedy), a sample after reshaping the
distribution (temperature, top-k, nucleus), or the best few prefixes kept side by side
(beam search).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from tfcourse.attention import softmax

# Maps token ids ``(n, t)`` to the logits of the next token ``(n, vocab)``.
StepLogits = Callable[[Tensor], Tensor]


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row (ties with the k-th are kept); the rest become -inf.

    ``(..., vocab) -> (..., vocab)``; ``k >= vocab`` leaves the logits unchanged.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if k >= logits.size(-1):
        return logits
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches ``p``.

    A token is removed when the tokens more likely than it already hold probability
    ``>= p``; the most likely token therefore always stays. ``(..., vocab) -> (..., vocab)``.
    """
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    remove_sorted = mass_before >= p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row from ``softmax(filtered logits / temperature)``.

    ``logits``: ``(batch, vocab)`` -> ``LongTensor[batch]``. ``temperature=0`` is greedy.
    Filters apply in the order temperature, top-k, top-p. Pass a seeded ``generator`` for
    reproducible samples.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def decoder_only_step(model: nn.Module) -> StepLogits:
    """Next-token logits of a decoder-only model such as :class:`~tfcourse.model.GPT`.

    Prefixes longer than the model's ``config.block_size`` are cut to their last ``block_size`` tokens.
    """
    block_size = model.config.block_size
    return lambda ids: model(ids[:, -block_size:])[:, -1]


def seq2seq_step(model: nn.Module, src: Tensor, src_mask: Tensor | None = None) -> StepLogits:
    """Next-token logits of an encoder-decoder model for one source ``src (1, Ls)`` or a batch.

    The source is encoded once; its memory is repeated to match the number of prefixes.
    """
    memory = model.encode(src, src_mask)

    def step(ids: Tensor) -> Tensor:
        repeat = ids.size(0) // memory.size(0)
        mem = memory.repeat_interleave(repeat, dim=0)
        mask = None if src_mask is None else src_mask.repeat_interleave(repeat, dim=0)
        return model.decode(ids, mem, mask)[:, -1]

    return step


@torch.no_grad()
def decode_tokens(step: StepLogits, prefix: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor],
                  eos_id: int | None = None) -> Tensor:
    """Append ``pick(logits)`` ``max_new_tokens`` times (or until every row has emitted EOS).

    ``pick`` maps the next-token logits ``(batch, vocab)`` to token ids ``(batch,)``.
    ``prefix``: ``(batch, t)`` -> ``(batch, t + n)``; rows that finished early are padded with EOS.
    """
    ids = prefix
    done = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        next_id = pick(step(ids))
        if eos_id is not None:
            next_id = next_id.masked_fill(done, eos_id)
            done |= next_id == eos_id
        ids = torch.cat([ids, next_id[:, None]], dim=1)
        if done.all():
            break
    return ids


def greedy_decode(step: StepLogits, prefix: Tensor, max_new_tokens: int, eos_id: int | None = None) -> Tensor:
    """Append the arg-max token ``max_new_tokens`` times (or until every row has emitted EOS).

    ``prefix``: ``(batch, t)`` -> ``(batch, t + n)``; rows that finished early are padded with EOS.
    """
    return decode_tokens(step, prefix, max_new_tokens, lambda logits: logits.argmax(dim=-1), eos_id)


@torch.no_grad()
def beam_search(
    step: StepLogits,
    prefix: Tensor,
    beam_width: int = 4,
    max_new_tokens: int = 32,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
) -> Tensor:
    """The most likely continuation of one ``prefix (t,)`` found with ``beam_width`` beams.

    Each step extends every beam by every token and keeps the ``beam_width`` best
    extensions by summed log-probability. An extension ending in ``eos_id`` that ranks
    among those best is finished instead, with score
    ``sum log p / (generated length)^length_penalty`` (``length_penalty > 0`` favours
    longer outputs). The search stops after ``max_new_tokens``, or once ``beam_width``
    beams have finished and no unfinished beam scores better than the worst of them.
    Returns ``prefix`` followed by the best continuation (EOS included when emitted).
    """
    beams, scores = prefix[None, :], torch.zeros(1, device=prefix.device, dtype=torch.float64)
    finished: list[tuple[float, Tensor]] = []
    for length in range(1, max_new_tokens + 1):
        log_probs = torch.log_softmax(step(beams).double(), dim=-1)
        top_scores, top_index = (scores[:, None] + log_probs).flatten().topk(min(2 * beam_width, log_probs.numel()))
        alive: list[tuple[int, int, float]] = []  # (beam, token, score)
        for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
            beam, token = divmod(index, log_probs.size(-1))
            if token != eos_id:
                alive.append((beam, token, score))
            elif rank < beam_width:
                ended = torch.cat([beams[beam], beams.new_tensor([token])])
                finished.append((score / length**length_penalty, ended))
            if len(alive) == beam_width:
                break
        finished = sorted(finished, key=lambda pair: pair[0], reverse=True)[:beam_width]
        parents, tokens, kept_scores = zip(*alive)
        beams = torch.cat([beams[list(parents)], beams.new_tensor(tokens)[:, None]], dim=1)
        scores = scores.new_tensor(kept_scores)
        best_alive = max(kept_scores) / length**length_penalty
        if len(finished) == beam_width and best_alive <= finished[-1][0]:
            return finished[0][1]
    finished += [(s / max_new_tokens**length_penalty, b) for s, b in zip(scores.tolist(), beams)]
    return max(finished, key=lambda pair: pair[0])[1]


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Extend ``idx (batch, t)`` by ``max_new_tokens`` sampled tokens from a :class:`~tfcourse.model.GPT`.

    With ``use_cache`` the prompt is processed once and each later step feeds only the
    newest token, reading earlier keys and values from a KV cache. Contexts longer than the
    model's ``block_size`` keep only the last ``block_size`` tokens, with or without the cache.
    """
    block_size = model.config.block_size
    cache, new_tokens = None, idx
    for _ in range(max_new_tokens):
        if not use_cache:
            logits = model(idx[:, -block_size:])
        else:
            if cache is None or cache.length + new_tokens.size(1) > block_size:
                cache, new_tokens = model.new_cache(), idx[:, -block_size:]
            logits, cache = model(new_tokens, cache)
        next_id = sample_next(logits[:, -1], temperature, top_k, top_p, generator)
        new_tokens = next_id[:, None]
        idx = torch.cat([idx, new_tokens], dim=1)
    return idx
