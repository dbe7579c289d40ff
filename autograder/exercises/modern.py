"""Lesson 08-modern (bonus), the modern decoder: rotary positions per batch element, grouped-query attention's
shared key/value heads, and mixture-of-experts routing with its load-balancing loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.exercise import Case, CaseContext, Exercise, Mistake
from tfcourse import llama, moe

LESSON = "08-modern"


# --- apply_rope ---------------------------------------------------------------------------------

def rope_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    """``(x (B, h, T, d), cos, sin, positions (B, T))``; the sequences of a batch start at different positions."""
    sizes = [(1, 1, 1, 4, 8), (3, 2, 6, 10, 40)] if hidden else [(2, 3, 5, 8, 16), (3, 2, 4, 6, 12), (1, 4, 7, 16, 64)]
    cases = []
    for b, h, t, d, max_len in sizes:
        cos, sin = llama.rope_angles(max_len, d, dtype=ctx.dtype, device=ctx.device)
        starts = ctx.randint(0, max_len - t + 1, b, 1)
        positions = starts + torch.arange(t, device=ctx.device)  # (B, T): each sequence from its own start
        cases.append(Case(f"x ({b}, {h}, {t}, {d}), table of {max_len} positions, each sequence from its own start",
                          (ctx.randn(b, h, t, d), cos, sin, positions)))
    cos, sin = llama.rope_angles(12, 8, dtype=ctx.dtype, device=ctx.device)
    left_padded = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]], device=ctx.device)
    cases.append(Case("a left-padded batch: positions [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]",
                      (ctx.randn(2, 2, 5, 8), cos, sin, left_padded),
                      rule="token t of sequence b is rotated by the angles of row positions[b, t] of the table, "
                           "whatever its index t."))
    return cases


def _wrong_rope(indices: bool = False, first_row: bool = False, adjacent: bool = False, backwards: bool = False):
    """A wrong RoPE: every sequence at 0..T-1 (``indices``) or at the first sequence's positions, adjacent pairs
    (x_{2i}, x_{2i+1}) rotated instead of (x_i, x_{i+d/2}), or the rotation by -theta."""
    def apply_rope(x, cos, sin, positions):
        if indices:
            positions = torch.arange(x.size(-2), device=x.device).expand_as(positions)
        if first_row:
            positions = positions[:1].expand_as(positions)
        c, s = cos[positions][:, None], sin[positions][:, None]
        s = -s if backwards else s
        if adjacent:
            even, odd = x[..., 0::2], x[..., 1::2]
            return torch.stack([even * c - odd * s, even * s + odd * c], dim=-1).flatten(-2)
        half = x.size(-1) // 2
        first, second = x[..., :half], x[..., half:]
        return torch.cat([first * c - second * s, first * s + second * c], dim=-1)
    return apply_rope


APPLY_ROPE = Exercise(
    name="apply_rope",
    lesson=LESSON,
    reference=llama.apply_rope,
    gradients=True,
    make_cases=rope_cases,
    points=3,
    mistakes=(
        Mistake("positions ignored", _wrong_rope(indices=True),
                "every sequence is rotated as if it started at position 0. Look up each token's own position: "
                "the rows cos[positions] and sin[positions], of shape (B, T, d/2)."),
        Mistake("the first sequence's positions for all", _wrong_rope(first_row=True),
                "every sequence uses the positions of the first one. positions has one row per sequence: index the "
                "table with the whole (B, T) tensor."),
        Mistake("adjacent pairs rotated", _wrong_rope(adjacent=True),
                "this rotates the pairs (x_0, x_1), (x_2, x_3), ... (the interleaved convention). The course pairs "
                "x_i with x_{i + d/2}: split x into its first and second halves."),
        Mistake("rotated the wrong way", _wrong_rope(backwards=True),
                "the rotation goes by -theta. x'_i = x_i cos - x_{i+d/2} sin and x'_{i+d/2} = x_i sin + "
                "x_{i+d/2} cos."),
    ),
    hints=(
        ("Indexing the table with a tensor of positions, cos[positions], gives each token its own row: "
         "(B, T, d/2). The heads share it, so give it a size-1 head axis."),
        ("Split x into its two halves along the last axis, x[..., :d/2] and x[..., d/2:]. Each pair "
         "(x_i, x_{i+d/2}) turns by its angle like a 2-D vector, with the cosines and sines of its position."),
        ("cos = cos[positions][:, None]; sin likewise; return torch.cat([first * cos - second * sin, "
         "first * sin + second * cos], dim=-1)."),
    ),
    difficulty=2,
    minutes=20,
)


# --- repeat_kv -----------------------------------------------------------------------------------

def repeat_kv_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 3, 1, 2, 4), (3, 2, 5, 4, 3)] if hidden else [(2, 2, 5, 4, 2), (1, 4, 3, 8, 2), (2, 1, 6, 4, 4),
                                                                (1, 3, 2, 2, 3)]
    cases = [Case(f"x ({b}, {h}, {t}, {d}), n_rep {n}", (ctx.randn(b, h, t, d), n)) for b, h, t, d, n in sizes]
    return cases + [Case("n_rep 1: multi-head attention, nothing to repeat", (ctx.randn(2, 3, 4, 4), 1))]


REPEAT_KV = Exercise(
    name="repeat_kv",
    lesson=LESSON,
    reference=llama.repeat_kv,
    gradients=True,
    make_cases=repeat_kv_cases,
    points=1,
    mistakes=(
        Mistake("heads cycled instead of repeated in a row", lambda x, n_rep: x.repeat(1, n_rep, 1, 1),
                "the heads come out in the order 0, 1, 0, 1, ...: query head h would read key/value head "
                "h % n_kv_heads. Query head h reads head h // n_rep, so repeat each head n_rep times in a row "
                "(0, 0, 1, 1, ...)."),
        Mistake("positions repeated instead of heads", lambda x, n_rep: x.repeat_interleave(n_rep, dim=2),
                "the sequence axis grew. Repeat along the heads axis, dim=1."),
    ),
    hints=(
        "The result has n_kv_heads * n_rep heads; query head h reads key/value head h // n_rep.",
        "Each head appears n_rep times in a row: for two repeats, head 0, head 0, head 1, head 1, and so on.",
        ("x.repeat_interleave(n_rep, dim=1) does it; so does x[:, :, None].expand(B, h_kv, n_rep, T, d) "
         "reshaped to (B, h_kv * n_rep, T, d), without copying until the reshape."),
    ),
    difficulty=1,
    minutes=10,
)


# --- top_k_routing -------------------------------------------------------------------------------

def routing_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 2, 1), (20, 8, 3)] if hidden else [(6, 4, 2), (10, 8, 2), (5, 3, 1), (4, 5, 5)]
    cases = [Case(f"{n} tokens, {e} experts, k {k}", (ctx.randn(n, e, scale=2.0), k)) for n, e, k in sizes]
    return cases + [Case("a batch of sequences: logits (2, 5, 4), k 2", (ctx.randn(2, 5, 4, scale=2.0), 2),
                         rule="the experts are on the last axis, whatever the leading axes.")]


def _wrong_routing(renormalise: bool = True, largest: bool = True, raw: bool = False):
    """Wrong routing: the full softmax's probabilities of the k best, the k worst experts, or the raw logits."""
    def top_k_routing(router_logits, k):
        top_logits, indices = router_logits.topk(k, dim=-1, largest=largest)
        if raw:
            return top_logits, indices
        if renormalise:
            return F.softmax(top_logits, dim=-1), indices
        return F.softmax(router_logits, dim=-1).gather(-1, indices), indices
    return top_k_routing


TOP_K_ROUTING = Exercise(
    name="top_k_routing",
    lesson=LESSON,
    reference=moe.top_k_routing,
    gradients=True,
    make_cases=routing_cases,
    points=2,
    mistakes=(
        Mistake("weights not renormalised", _wrong_routing(renormalise=False),
                "these are the chosen experts' probabilities under the softmax over all experts: they sum to less "
                "than 1. Renormalise them over the k chosen ones (a softmax over the k chosen logits does it)."),
        Mistake("the k least likely experts", _wrong_routing(largest=False),
                "these are the k experts of LOWEST score. topk returns the largest by default."),
        Mistake("raw logits as weights", _wrong_routing(raw=True),
                "the mixing weights are the router's logits themselves. Turn them into probabilities that sum to 1."),
    ),
    hints=(
        "torch.topk(router_logits, k, dim=-1) gives the k largest values and their indices, largest first.",
        ("The chosen probabilities, renormalised to sum 1, equal a softmax over the chosen logits alone: "
         "the other experts' terms cancel."),
        "top_logits, indices = router_logits.topk(k, dim=-1); return torch.softmax(top_logits, dim=-1), indices.",
    ),
    difficulty=2,
    minutes=10,
)


# --- load_balancing_loss -------------------------------------------------------------------------

def balance_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(3, 2, 1), (24, 6, 2)] if hidden else [(8, 4, 2), (12, 4, 1), (16, 8, 2), (6, 3, 3)]
    cases = []
    for n, e, k in sizes:
        logits = ctx.randn(n, e, scale=2.0)
        cases.append(Case(f"{n} tokens, {e} experts, top-{k}", (logits, moe.top_k_routing(logits, k)[1])))
    logits = ctx.randn(10, 4)
    collapsed = torch.zeros(10, 1, dtype=torch.long, device=ctx.device)
    batched = ctx.randn(2, 6, 4, scale=2.0)
    return cases + [Case("10 tokens, 4 experts, every token sent to expert 0", (logits, collapsed)),
                    Case("a batch of sequences: logits (2, 6, 4), top-2", (batched, moe.top_k_routing(batched, 2)[1]),
                         rule="every row of router_logits along the last axis is one token, whatever the leading "
                              "axes.")]


def _wrong_balance(per_token: bool = False, scaled: bool = True, soft: bool = False, logits: bool = False):
    """A wrong loss: f counted per token (it sums to k), no factor n_experts, f from the probabilities, or P the
    mean logits."""
    def load_balancing_loss(router_logits: Tensor, expert_indices: Tensor) -> Tensor:
        n_experts = router_logits.size(-1)
        router_logits = router_logits.reshape(-1, n_experts)
        probs = F.softmax(router_logits, dim=-1)
        mean_probs = router_logits.mean(dim=0) if logits else probs.mean(dim=0)
        expert_indices = expert_indices.reshape(router_logits.size(0), -1)
        counts = F.one_hot(expert_indices, n_experts).to(probs.dtype).sum(dim=1)  # (N, n_experts)
        fractions = counts.mean(dim=0) if per_token else counts.mean(dim=0) / expert_indices.size(-1)
        if soft:
            fractions = probs.mean(dim=0)
        return (n_experts if scaled else 1) * (fractions * mean_probs).sum()
    return load_balancing_loss


LOAD_BALANCING_LOSS = Exercise(
    name="load_balancing_loss",
    lesson=LESSON,
    reference=moe.load_balancing_loss,
    gradients=True,
    make_cases=balance_cases,
    points=2,
    mistakes=(
        Mistake("f counted per token", _wrong_balance(per_token=True),
                "with k experts per token your f sums to k. f_i is the share of the N k assignments that go to "
                "expert i: divide the counts by N k, so that f sums to 1."),
        Mistake("no factor n_experts", _wrong_balance(scaled=False),
                "the sum is not multiplied by n_experts, so a uniform router scores 1 / n_experts instead of 1."),
        Mistake("f from the probabilities", _wrong_balance(soft=True),
                "f is the router's probabilities averaged, the same as P. f_i counts where the tokens actually go: "
                "the share of expert_indices equal to i."),
        Mistake("P from the logits", _wrong_balance(logits=True),
                "P averages the raw logits. P_i is the mean of the softmax probability of expert i over the tokens."),
    ),
    hints=(
        ("Two vectors of length n_experts: f, where the tokens went (from expert_indices, counts), and P, what "
         "the router wanted (from the softmax of router_logits, averaged over the tokens)."),
        ("torch.bincount(expert_indices.flatten(), minlength=n_experts) counts the assignments; there are "
         "N k of them. Only P needs a gradient."),
        ("return n_experts * (f * P).sum(), with f = counts / expert_indices.numel() in P's dtype and P the "
         "softmax of the logits reshaped to (N, n_experts), averaged over dim 0."),
    ),
    difficulty=2,
    minutes=15,
)

EXERCISES = (APPLY_ROPE, REPEAT_KV, TOP_K_ROUTING, LOAD_BALANCING_LOSS)
