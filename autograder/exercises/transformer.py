"""Lesson 06-transformer: the training loss and schedule, decoding strategies, and a GPT with a KV cache."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.exercise import Case, CaseContext, Exercise, Mistake
from autograder.harness.casedata import BigramLogits, PositionalBigramLogits
from tfcourse import generation, training
from tfcourse.attention import scaled_dot_product_attention, softmax
from tfcourse.layers import gelu, layer_norm
from tfcourse.masks import causal_mask
from tfcourse.model import GPT, GPTConfig
from tfcourse.multihead import merge_heads, split_heads

LESSON = "06-transformer"
INF = float("inf")
CROSS_ENTROPY_APIS = ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss",
                      "torch.nn.functional.log_softmax", "torch.log_softmax", "torch.Tensor.log_softmax")


def _fresh_generator(ctx: CaseContext) -> torch.Generator:
    """A generator on the case's device, seeded from the case context (so hidden seeds change it too)."""
    return torch.Generator(ctx.device).manual_seed(int(ctx.randint(0, 2**31 - 1, 1).item()))


# --- label_smoothing_loss -----------------------------------------------------------------------

def label_smoothing_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    def targets(*shape: int, vocab: int, ignored: float = 0.0, ignore_index: int = -100) -> Tensor:
        return ctx.randint(0, vocab, *shape).masked_fill(~ctx.rand_mask(*shape, keep=1.0 - ignored), ignore_index)

    sizes = [((1, 3), 0.1), ((3, 5, 11), 0.25)] if hidden else [((6, 5), 0.1), ((2, 4, 9), 0.2), ((7, 4), 0.0)]
    cases = [Case(f"logits {shape}, smoothing {eps}", (ctx.randn(*shape), targets(*shape[:-1], vocab=shape[-1])),
                  {"smoothing": eps}) for shape, eps in sizes]
    padded = targets(3, 6, vocab=8, ignored=0.4)
    pad_zero = targets(4, 5, vocab=6, ignored=0.3, ignore_index=0)
    return cases + [
        Case("ignored positions (-100)", (ctx.randn(3, 6, 8), padded), {"smoothing": 0.1}),
        Case("ignore_index=0 (padding id)", (ctx.randn(4, 5, 6), pad_zero), {"smoothing": 0.3, "ignore_index": 0}),
        Case("large logits", (ctx.randn(5, 7, scale=200.0), targets(5, vocab=7)), {"smoothing": 0.1}),
        Case("every position ignored", (ctx.randn(2, 3, 4), torch.full((2, 3), -100, device=ctx.device)),
             {"smoothing": 0.1}),
    ]


def _smoothing_over_other_classes(logits, target, smoothing=0.1, ignore_index=-100):
    """eps / (V - 1) on every wrong class and 1 - eps on the true one, instead of eps / V on every class."""
    vocab = logits.size(-1)
    return training.label_smoothing_loss(logits, target, smoothing * vocab / (vocab - 1), ignore_index)


def _rescaled_loss(scale_of):
    """The reference loss times ``scale_of(target, ignore_index)`` (a number, exact in the loss's dtype): a wrong
    normalisation."""
    def loss(logits, target, smoothing=0.1, ignore_index=-100):
        loss = training.label_smoothing_loss(logits, target, smoothing, ignore_index)
        return loss * torch.as_tensor(scale_of(target, ignore_index), dtype=loss.dtype)
    return loss


LABEL_SMOOTHING_LOSS = Exercise(
    name="label_smoothing_loss",
    lesson=LESSON,
    reference=training.label_smoothing_loss,
    gradients=True,
    make_cases=label_smoothing_cases,
    points=2,
    forbidden=CROSS_ENTROPY_APIS,
    mistakes=(
        Mistake("smoothing ignored", lambda logits, target, smoothing=0.1, ignore_index=-100:
                training.label_smoothing_loss(logits, target, 0.0, ignore_index),
                "this is the plain cross-entropy: mix in eps times the mean of -log p over all V classes."),
        Mistake("smoothing spread over the other V - 1 classes", _smoothing_over_other_classes,
                "the smoothed target gives eps / V to every class, the true one included, and 1 - eps + eps / V to "
                "the true class: loss = (1 - eps) * nll + eps * mean_v(-log p_v)."),
        Mistake("ignored positions counted in the mean",
                _rescaled_loss(lambda t, ignore: (t != ignore).sum().item() / t.numel()),
                "divide by the number of positions that are not ignored, not by all positions."),
        Mistake("summed, not averaged", _rescaled_loss(lambda t, ignore: (t != ignore).sum()),
                "the loss is the mean over the kept positions; divide the sum by their number."),
    ),
    hints=(
        "Flatten the positions to (N, V) and (N,). A stable log-softmax subtracts each row's `logsumexp` (taken "
        "with `keepdim=True`) from its logits.",
        "Per position: the nll is minus log p of the target class (`.gather` along the last axis; replace ignored "
        "targets by 0 first so the index is valid), and the uniform term is minus the mean of log p over all V "
        "classes. Mix them with weights 1 - eps and eps.",
        "keep = target != ignore_index; loss_i = (1 - eps) * nll + eps * uniform; return (loss_i * keep).sum() / "
        "keep.sum().clamp(min=1).",
    ),
    difficulty=2,
    minutes=15,
)


# --- noam_lr ------------------------------------------------------------------------------------

def noam_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    if hidden:
        d_model, warmup = int(ctx.randint(16, 1025, 1).item()), int(ctx.randint(10, 5000, 1).item())
        steps = [0, 1, int(ctx.randint(2, warmup, 1).item()), warmup, int(ctx.randint(warmup + 1, 10 * warmup, 1).item())]
    else:
        d_model, warmup = 512, 4000
        steps = [0, 1, 100, 3999, 4000, 4001, 100_000]
    return [Case(f"step {step}, d_model {d_model}, warmup {warmup}", (step, d_model, warmup)) for step in steps] + [
        Case("step 5, d_model 64, warmup 10", (5, 64, 10))]


def _noam_formula(warmup_power: float = -1.5, pick=min):
    def noam(step, d_model, warmup):
        step = max(step, 1)
        return d_model**-0.5 * pick(step**-0.5, step * warmup**warmup_power)
    return noam


NOAM_LR = Exercise(
    name="noam_lr",
    lesson=LESSON,
    reference=training.noam_lr,
    make_cases=noam_cases,
    points=1,
    dtypes=(torch.float64,),
    mistakes=(
        Mistake("warm-up term with warmup^-0.5", _noam_formula(warmup_power=-0.5),
                "during warm-up the rate is step * warmup^-1.5 (so both terms meet at step = warmup)."),
        Mistake("no warm-up", _noam_formula(pick=max),
                "the rate follows step^-0.5 from the first step, with no warm-up: take the smaller of the two terms "
                "(min, not max), the warm-up term being step * warmup ** -1.5 (times warmup ** -1.5, not divided "
                "by it)."),
        Mistake("no d_model^-0.5 factor", lambda step, d_model, warmup: training.noam_lr(step, 1, warmup),
                "multiply by d_model^-0.5: wider models get smaller learning rates."),
        Mistake("step 0 gives 0", lambda step, d_model, warmup: 0.0 if step == 0 else
                training.noam_lr(step, d_model, warmup),
                "step 0 counts as step 1 (0^-0.5 is undefined): use max(step, 1)."),
    ),
    hints=(
        "Transcribe the formula with Python's `**` operator: a power of -0.5 is one over a square root.",
        "Both terms are equal when the step reaches warmup: before it the linear one (step times warmup to the "
        "power -1.5) is the smaller, after it the step^-0.5 decay. Step 0 counts as step 1, since 0 ** -0.5 raises "
        "ZeroDivisionError.",
        "step = max(step, 1); return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5).",
    ),
    difficulty=1,
    minutes=5,
)


# --- top_k_filter / numpy_top_k_filter ------------------------------------------------------------

def top_k_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [((4, 17), 5), ((1, 2, 3, 12), 2)] if hidden else [((2, 10), 3), ((2, 3, 8), 1), ((3, 5), 4)]
    cases = [Case(f"logits {shape}, k={k}", (ctx.randn(*shape), k)) for shape, k in sizes]
    ties = torch.tensor([[3, 1, 2, 2, 0, 2, 1, 0]], dtype=ctx.dtype, device=ctx.device)
    ties = torch.cat([ties, ctx.randint(0, 4, 2, 8).to(ctx.dtype)])
    masked = ctx.randn(2, 6)
    masked[:, ::2] = -INF
    return cases + [
        Case("ties with the k-th largest", (ties, 2)),
        Case("k equal to the vocabulary", (ctx.randn(2, 6), 6)),
        Case("k larger than the vocabulary", (ctx.randn(3, 5), 9)),
        Case("-inf logits, k=2", (masked, 2)),
    ]


def _keep_k_smallest(logits, k):
    keep = generation.top_k_filter(-logits, k) == -logits
    return logits.masked_fill(~keep, -INF)


def _removed_to_zero(reference):
    """``reference``'s filter (PyTorch or NumPy), but removed logits become 0 instead of -inf."""
    def filtered(logits, *args):
        library = torch if isinstance(logits, Tensor) else np
        return library.where(reference(logits, *args) != logits, 0.0, logits)
    return filtered


def _exactly_k(logits, k):
    top = logits.topk(min(k, logits.size(-1)), dim=-1)
    return torch.full_like(logits, -INF).scatter(-1, top.indices, top.values)


def _kth_removed(logits, k):
    if k >= logits.size(-1):
        return logits
    return logits.masked_fill(logits <= logits.topk(k, dim=-1).values[..., -1:], -INF)


TOP_K_FILTER = Exercise(
    name="top_k_filter",
    lesson=LESSON,
    reference=generation.top_k_filter,
    make_cases=top_k_cases,
    points=1,
    mistakes=(
        Mistake("removed logits set to 0", _removed_to_zero(generation.top_k_filter),
                "a logit of 0 is still a likely token; removed logits must become -inf (probability 0)."),
        Mistake("keeps the k smallest", _keep_k_smallest,
                "keep the largest logits: compare with the k-th largest, torch.topk(logits, k).values[..., -1:]."),
        Mistake("ties with the k-th dropped", _exactly_k,
                "a logit equal to the k-th largest stays too: remove only logits strictly below the threshold."),
        Mistake("the k-th largest removed too", _kth_removed,
                "only k - 1 logits survive: remove logits < threshold, not <= threshold."),
    ),
    hints=(
        "The k-th largest value of each row is the last of `torch.topk(logits, k).values`; keep its last dimension "
        "(slice it with `[..., -1:]`) so that it broadcasts against the row.",
        "Remove the logits strictly below that threshold with `masked_fill` (a new tensor, not in place): logits "
        "equal to it stay. When k >= vocab there is nothing to remove (topk would fail).",
        "if k >= logits.size(-1): return logits; threshold = torch.topk(logits, k, dim=-1).values[..., -1:]; return"
        " logits.masked_fill(logits < threshold, float('-inf')).",
    ),
    difficulty=1,
    minutes=10,
)


def _numpy_top_k_reference(logits: np.ndarray, k: int) -> np.ndarray:
    return generation.top_k_filter(torch.from_numpy(logits), k).numpy()


def _numpy_exactly_k(logits, k):
    best = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    out = np.full_like(logits, -np.inf)
    np.put_along_axis(out, best, np.take_along_axis(logits, best, axis=-1), axis=-1)
    return out


NUMPY_TOP_K_FILTER = Exercise(
    name="numpy_top_k_filter",
    lesson=LESSON,
    reference=_numpy_top_k_reference,
    make_cases=top_k_cases,
    points=1,
    numpy=True,
    forbidden=("torch.topk",),
    mistakes=(
        Mistake("removed logits set to 0", _removed_to_zero(_numpy_top_k_reference),
                "removed logits must become -np.inf, not 0."),
        Mistake("ties with the k-th dropped", _numpy_exactly_k,
                "keeping exactly k indices drops logits tied with the k-th largest: compare values with the "
                "threshold instead."),
    ),
    hints=(
        "`np.sort` sorts ascending along an axis: the k-th largest value of each row is k places from the end. Keep"
        " that axis (slice, do not index) so the threshold broadcasts against the row.",
        "`np.where` builds a new array: logits below the threshold become `-np.inf`, ties stay, the input is left "
        "untouched and the dtype kept. k >= vocab keeps everything.",
        "threshold = np.sort(logits, axis=-1)[..., -k:][..., :1]; return np.where(logits < threshold, -np.inf, "
        "logits), and logits.copy() when k >= logits.shape[-1].",
    ),
    difficulty=1,
    minutes=10,
)


# --- top_p_filter -------------------------------------------------------------------------------

MASS_REACHES_P = ("remove the token of rank r when the tokens ranked before it hold probability >= p, "
                  "sum_{j<r} p_(j) >= p: a token whose predecessors hold exactly p is removed (>=, not >).")


def _powers_of_two(ctx: CaseContext, exponents: list[float], rows: int = 2) -> Tensor:
    """``rows`` rows of logits ``e * log 2`` for the ``exponents`` ``e``, each row in its own order (drawn from
    ``ctx``). Their softmax is ``2^e / sum 2^e``: powers of two, exact in float32 and float64 however the sum
    is ordered, so the mass before a token can equal p exactly."""
    base = torch.tensor(exponents, dtype=torch.float64) * math.log(2)
    shuffled = [base[torch.randperm(len(exponents), generator=ctx.generator)] for _ in range(rows)]
    return torch.stack(shuffled).to(ctx.device, ctx.dtype)


def top_p_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [((5, 13), 0.75), ((1, 2, 20), 0.95)] if hidden else [((2, 10), 0.9), ((2, 3, 8), 0.5), ((4, 6), 1.0)]
    cases = [Case(f"logits {shape}, p={p}", (ctx.randn(*shape, scale=2.0), p)) for shape, p in sizes]
    dominant = ctx.randn(3, 7)
    dominant[:, 2] += 10.0
    after_top_k = generation.top_k_filter(ctx.randn(3, 9), 5)
    return cases + [
        Case("one token holds more than p", (dominant, 0.8)),
        Case("tiny p keeps only the top token", (ctx.randn(2, 8), 1e-3)),
        Case("-inf logits (after top-k)", (after_top_k, 0.7)),
        Case("probabilities 1/2, 1/4, 1/4 and p=0.5: the mass before a token is exactly p",
             (_powers_of_two(ctx, [1, 0, 0]), 0.5), rule=MASS_REACHES_P),
        Case("probabilities 1/2, 1/4, 1/8, 1/8, 0 and p=0.75: the mass before a token is exactly p",
             (_powers_of_two(ctx, [2, 1, 0, 0, -INF]), 0.75), rule=MASS_REACHES_P),
    ]


def _top_p_variant(crossing_removed: bool = False, sort: bool = True, scatter: bool = True, strict: bool = False):
    """A wrong nucleus filter: removes the token that reaches p, skips the sort, forgets to unsort, or keeps a
    token whose predecessors hold exactly p."""
    def top_p(logits, p):
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True) if sort else (logits, None)
        probs = softmax(sorted_logits, dim=-1)
        cumulative = probs.cumsum(-1)
        if crossing_removed:
            remove = cumulative > p
        else:
            remove = cumulative - probs > p if strict else cumulative - probs >= p
        if sort and scatter:
            remove = torch.zeros_like(remove).scatter(-1, order, remove)
        return logits.masked_fill(remove, -INF)
    return top_p


TOP_P_FILTER = Exercise(
    name="top_p_filter",
    lesson=LESSON,
    reference=generation.top_p_filter,
    make_cases=top_p_cases,
    points=2,
    mistakes=(
        Mistake("the token that reaches p removed", _top_p_variant(crossing_removed=True),
                "compare the probability mass *before* each token (cumsum - probs) with p: the token that "
                "reaches p belongs to the nucleus, and so the most likely token always stays."),
        Mistake("cumulative sum in vocabulary order", _top_p_variant(sort=False),
                "sort the logits in descending order before the cumulative sum: the nucleus is the most likely "
                "tokens, not the first ones in the vocabulary."),
        Mistake("mask left in sorted order", _top_p_variant(scatter=False),
                "the removal mask is in sorted order; put it back in vocabulary order with "
                "torch.zeros_like(remove).scatter(-1, order, remove) before masking the logits."),
        Mistake("removed logits set to 0", _removed_to_zero(generation.top_p_filter),
                "removed logits must become -inf, not 0."),
        Mistake("kept when the mass before it equals p", _top_p_variant(strict=True),
                "a token is removed when the tokens before it hold p or more: compare with >= p, not > p."),
    ),
    hints=(
        "Sort each row in descending order with `torch.sort`, keeping the permutation it returns, and take the "
        "softmax of the sorted logits.",
        "The mass before each token is the cumulative sum minus the token's own probability (an exclusive "
        "cumulative sum): remove the sorted token when it is >= p. That mask is in sorted order; `scatter` with the"
        " permutation puts it back in vocabulary order.",
        "remove = probs.cumsum(-1) - probs >= p; remove = torch.zeros_like(remove).scatter(-1, order, remove); "
        "return logits.masked_fill(remove, float('-inf')).",
    ),
    difficulty=2,
    minutes=15,
)


# --- sample_next --------------------------------------------------------------------------------

def sample_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    batch, vocab = (96, 11) if hidden else (64, 8)
    settings = [
        ("temperature 1", {}),
        ("temperature 0.5", {"temperature": 0.5}),
        ("temperature 2, top_k 3", {"temperature": 2.0, "top_k": 3}),
        ("temperature 1.5, top_p 0.7", {"temperature": 1.5, "top_p": 0.7}),
        ("top_k 3 and top_p 0.6", {"top_k": 3, "top_p": 0.6}),
        ("temperature 0 is greedy", {"temperature": 0.0}),
    ]
    return [Case(label, (ctx.randn(batch, vocab, scale=1.5),), {**options, "generator": _fresh_generator(ctx)},
                 rule=SAMPLING_RULES.get(label, "")) for label, options in settings]


SAMPLING_RULES = {
    "temperature 1": "draw with torch.multinomial(probs, num_samples=1, generator=generator): the check hands your "
                     "function and the course's the same seeded generator, so the same distribution draws the same "
                     "tokens; without generator= the draws come from torch's global generator and differ.",
    "temperature 0 is greedy": "temperature == 0 means greedy decoding: return logits.argmax(-1), without dividing "
                               "by the temperature or drawing.",
}


def _sampler(order: tuple[str, ...] = ("temperature", "top_k", "top_p"), multiply: bool = False,
             greedy: bool = False):
    """A sampler that applies temperature and filters in ``order``; wrong orders and temperatures are mistakes."""
    def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if greedy or temperature == 0:
            return logits.argmax(dim=-1)
        steps = {
            "temperature": lambda x: x * temperature if multiply else x / temperature,
            "top_k": lambda x: x if top_k is None else generation.top_k_filter(x, top_k),
            "top_p": lambda x: x if top_p is None else generation.top_p_filter(x, top_p),
        }
        for name in order:
            logits = steps[name](logits)
        return torch.multinomial(softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)
    return sample_next


SAMPLE_NEXT = Exercise(
    name="sample_next",
    lesson=LESSON,
    reference=generation.sample_next,
    make_cases=sample_cases,
    points=2,
    mistakes=(
        Mistake("always the arg-max", _sampler(greedy=True),
                "this is greedy decoding; draw from the distribution with torch.multinomial(probs, 1, "
                "generator=generator) unless temperature == 0."),
        Mistake("temperature multiplies", _sampler(multiply=True),
                "divide the logits by the temperature: T > 1 flattens the distribution, T < 1 sharpens it."),
        Mistake("filters before the temperature", _sampler(order=("top_k", "top_p", "temperature")),
                "the nucleus depends on the temperature: divide by T first, then filter."),
        Mistake("top-p before top-k", _sampler(order=("temperature", "top_p", "top_k")),
                "apply top-k first, then top-p on what is left (its probabilities renormalised)."),
    ),
    hints=(
        "Order: temperature 0 is greedy (the arg-max of each row); otherwise divide the logits by the temperature, "
        "then apply your `top_k_filter` (when top_k is given), then your `top_p_filter` (when top_p is given).",
        "The softmax turns the filtered logits into probabilities (-inf gets 0), and `torch.multinomial` draws one "
        "index per row. Pass it the `generator`, or the check cannot reproduce your draws.",
        "return torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1, generator=generator).squeeze(-1): "
        "multinomial returns (batch, 1).",
    ),
    difficulty=2,
    minutes=15,
)


# --- beam_search --------------------------------------------------------------------------------

def _greedy_trap(ctx: CaseContext) -> BigramLogits:
    """From token 0, token 1 is likelier than token 2, but after 2 comes a near-certain token 3."""
    probs = torch.tensor([[0.0, 0.55, 0.45, 0.0], [0.25] * 4, [0.01, 0.01, 0.01, 0.97], [0.25] * 4])
    return BigramLogits(probs.clamp_min(1e-4).log().to(ctx.device, ctx.dtype))


def _bigram(ctx: CaseContext, vocab: int, rows: dict[int, dict[int, float]]) -> BigramLogits:
    """A bigram model given by next-token probabilities: ``rows[a][b]`` for the transitions that matter, 0.001
    for every other one (the search's log-softmax renormalises each row)."""
    probs = torch.full((vocab, vocab), 1e-3, dtype=torch.float64)
    for token, row in rows.items():
        for following, p in row.items():
            probs[token, following] = p
    return BigramLogits(probs.log().to(ctx.device, ctx.dtype))


def _search(width: int, new: int, eos_id: int | None = None, penalty: float = 1.0) -> dict:
    return {"beam_width": width, "max_new_tokens": new, "eos_id": eos_id, "length_penalty": penalty}


def _rule_case(ctx: CaseContext, label: str, rule: str, vocab: int, rows: dict[int, dict[int, float]],
               prefix: list[int], new: int, width: int = 2) -> Case:
    """A case where breaking one rule of the notebook's beam search changes the answer: EOS is the last token,
    length_penalty 1."""
    step, ids = _bigram(ctx, vocab, rows), torch.tensor(prefix, device=ctx.device)
    return Case(label, (step, ids), _search(width, new, vocab - 1, 1.0), rule=rule)


def beam_rule_cases(ctx: CaseContext) -> list[Case]:
    """One case per rule of the notebook's beam search (rules 2 to 6), each built so that the search that
    breaks the rule returns another sequence. Token 0 starts every prefix; the last token is EOS."""
    return [
        _rule_case(ctx, "2 * beam_width candidates", "rule 2: take the 2 * beam_width best candidates, so that "
                   "when an EOS among the first ones finishes, beam_width beams still go on.",
                   7, {0: {1: .5, 2: .4}, 1: {6: .5, 3: .45}, 2: {4: .55, 3: .4}, 4: {5: .99}, 5: {5: .99}}, [0], 5),
        _rule_case(ctx, "an EOS ranked beam_width or lower", "rule 3: only an EOS candidate ranked below "
                   "beam_width (0-based) finishes; an EOS ranked lower is dropped.",
                   7, {0: {1: .5, 2: .4}, 1: {3: .5, 6: .45}, 2: {6: .6, 3: .35},
                       3: {4: .3, 5: .28, 1: .2, 2: .17, 6: .04}, 4: {4: .99}, 5: {5: .99}}, [0], 6),
        _rule_case(ctx, "no more than beam_width beams", "rule 3: stop walking the candidates once beam_width "
                   "beams are extended: there are never more than beam_width live beams.",
                   6, {0: {1: .4, 2: .35, 3: .2}, 1: {5: .35, 2: .3, 1: .2, 0: .1}, 2: {5: .3, 1: .4, 0: .2, 2: .06},
                       3: {4: .99}, 4: {4: .99}}, [0], 4),
        _rule_case(ctx, "beam_width finished kept, early stop", "rules 4 and 5: keep only the beam_width best "
                   "finished sequences, and stop as soon as beam_width have finished and the best live score / "
                   "L^length_penalty is not above the worst of them.",
                   6, {0: {1: .55, 5: .2, 2: .15}, 1: {5: .5, 3: .2, 2: .1}, 2: {5: .9}, 3: {4: .99}, 4: {4: .99}},
                   [0], 6),
        _rule_case(ctx, "no stop while a live beam is better", "rule 5: stop early only when beam_width have "
                   "finished and the best live beam's score / L^length_penalty (normalised like the finished ones) "
                   "is not above the worst finished one.",
                   7, {0: {6: .4, 1: .35, 2: .2}, 1: {6: .5, 3: .45}, 2: {4: .95}, 4: {5: .99}, 5: {5: .99}}, [0], 6),
        _rule_case(ctx, "early stop against the worst finished", "rule 5: the best live beam is compared with the "
                   "worst of the beam_width finished sequences, the last of them once they are sorted best first.",
                   6, {0: {5: .3, 1: .25, 2: .2, 3: .15}, 1: {5: .9}, 2: {5: .9}, 3: {4: .8}, 4: {4: .99}}, [0], 6,
                   width=3),
        _rule_case(ctx, "L counts generated tokens, live beams join", "L is the number of generated tokens (the "
                   "prefix does not count), and after the last step (rule 6) the live beams join the finished ones "
                   "with score / max_new_tokens^length_penalty.",
                   6, {0: {5: .5, 1: .4, 2: .06}, 1: {3: .7, 2: .2}, 2: {2: .9}, 3: {3: .8, 2: .15}}, [3, 3, 0], 4),
        # After token 1, EOS and token 3 have the same logit: [0, 1, 5] finishes and [0, 1, 3] lives on with the
        # same score, bit for bit in any dtype (one sum of the same two numbers), at the same L. So the best live
        # beam exactly equals the worst finished one, and only "not above" (<=) stops there and returns [0, 5];
        # a search that goes on finds [0, 1, 3, 3, 3] better once normalised by max_new_tokens.
        _rule_case(ctx, EXACT_TIE_CASE, "rule 5: stop when the best live beam's score / L^length_penalty is not "
                   "above the worst finished one: a live beam that only equals it does not go on (<=, not <).",
                   6, {0: {5: .5, 1: .45, 2: .04}, 1: {5: .45, 3: .45}, 2: {4: .9}, 3: {3: .99}, 4: {4: .99}},
                   [0], 4),
    ]


# The beam case whose answer rests on an exact tie by design (every other one is far from any tie).
EXACT_TIE_CASE = "the best live beam level with the worst finished"


def beam_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    vocab = 7 if hidden else 6
    eos = vocab - 1

    def model(eos_bias: float = 0.0) -> PositionalBigramLogits:
        table = ctx.randn(12, vocab, vocab, scale=2.5)
        table[..., eos] += eos_bias
        return PositionalBigramLogits(table)

    def prefix(length: int) -> Tensor:
        return ctx.randint(0, eos, length)

    return [
        Case("a prefix where greedy loses", (_greedy_trap(ctx), torch.zeros(1, dtype=torch.long, device=ctx.device)),
             _search(2, 2)),
        Case("width 3, no EOS", (model(), prefix(2)), _search(3, 4)),
        Case("width 1 is greedy", (model(), prefix(1)), _search(1, 5)),
        Case("one new token", (model(), prefix(3)), _search(3, 1)),
        Case("EOS, length_penalty 1", (model(1.0), prefix(2)), _search(3, 8, eos, 1.0)),
        Case("EOS, length_penalty 0", (model(1.0), prefix(2)), _search(3, 8, eos, 0.0)),
        Case("EOS, length_penalty 2", (model(0.5), prefix(1)), _search(4, 8, eos, 2.0)),
        Case("EOS likely from the start", (model(2.0), prefix(2)), _search(2, 6, eos, 1.0)),
    ] + beam_rule_cases(ctx)


def _beam_variant(**override):
    """The reference search with some options overridden: a learner's search that ignores them."""
    def search(step, prefix, beam_width=4, max_new_tokens=32, eos_id=None, length_penalty=1.0):
        options = dict(beam_width=beam_width, max_new_tokens=max_new_tokens, eos_id=eos_id,
                       length_penalty=length_penalty)
        return generation.beam_search(step, prefix, **{**options, **override})
    return search


BEAM_SEARCH = Exercise(
    name="beam_search",
    lesson=LESSON,
    reference=generation.beam_search,
    make_cases=beam_cases,
    points=3,
    mistakes=(
        Mistake("EOS ignored", _beam_variant(eos_id=None),
                "an extension that ends in eos_id must stop and join the finished sequences, not grow further."),
        Mistake("no length normalisation", _beam_variant(length_penalty=0.0),
                "divide a finished sequence's score by (its number of generated tokens) ** length_penalty before "
                "comparing it with others."),
        Mistake("greedy search", _beam_variant(beam_width=1),
                "only one beam is kept; keep the beam_width best extensions of all beams at every step."),
    ),
    hints=(
        "State: the live beams as one (n, t) tensor and their summed log-probabilities (n,). Each step scores every"
        " beam extended by every token: the beam's score plus the token's log-probability (`torch.log_softmax` of "
        "`step(beams)` in float64).",
        "Flatten the candidates and take the 2 * beam_width best with `.topk`. Walk them best first, recovering "
        "beam and token with `divmod` by the vocabulary size: an EOS ranked below beam_width finishes (its score "
        "divided by L ** length_penalty), any other token extends its beam, until beam_width beams are extended.",
        "Keep the beam_width best finished. Stop early when beam_width are finished and the best live score / "
        "length ** length_penalty is not above the worst finished one; at the end the live beams join the finished "
        "with length = max_new_tokens, and the best of all wins.",
    ),
    difficulty=3,
    minutes=35,
)


# --- gpt_forward: a decoder-only forward pass with a KV cache ----------------------------------------

def _gpt_config(params: dict[str, Tensor], n_heads: int) -> GPTConfig:
    """The sizes of the GPT whose ``state_dict`` is ``params``."""
    vocab_size, d_model = params["token_embedding.weight"].shape
    return GPTConfig(
        vocab_size=vocab_size,
        block_size=params["position_embedding.embedding.weight"].size(0),
        n_layers=sum(name.endswith("self_attn.q_proj.weight") for name in params),
        n_heads=n_heads,
        d_model=d_model,
        d_ff=params["blocks.0.ff.w1.weight"].size(0),
    )


def _untrained_gpt(config: GPTConfig) -> GPT:
    """A GPT whose weights are about to be replaced, made without disturbing the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        return GPT(config)


@torch.no_grad()
def gpt_forward_reference(params: dict[str, Tensor], idx: Tensor, n_heads: int,
                          cache: list[tuple[Tensor, Tensor]] | None = None):
    """``tfcourse.model.GPT`` run on the weights ``params`` with a KV cache given as ``[(keys, values)]`` per layer.

    Returns ``(logits (B, T, vocab), [(keys, values)])`` with every position's keys and values.
    """
    model = _untrained_gpt(_gpt_config(params, n_heads))
    model.load_state_dict(params, assign=True)
    kv_cache = model.new_cache()
    for layer, (keys, values) in zip(kv_cache.layers, cache or ()):
        layer.update(keys, values)
    logits, kv_cache = model.eval()(idx, kv_cache)
    return logits, [(layer.keys, layer.values) for layer in kv_cache.layers]


def _init_scale(name: str, shape: torch.Size) -> float:
    """Standard deviation of a random weight: 1 for embeddings, 0.1 for biases and gains, 1/sqrt(fan_in) else."""
    if "embedding" in name:
        return 1.0
    if name.endswith("bias") or "norm" in name:
        return 0.1
    return shape[-1] ** -0.5


def _random_gpt_params(ctx: CaseContext, config: GPTConfig) -> dict[str, Tensor]:
    """Random weights in the layout of ``GPT(config).state_dict()``; LayerNorm gains near 1, tied embeddings."""
    shapes = {name: tensor.shape for name, tensor in _untrained_gpt(config).state_dict().items()}
    params = {name: ctx.randn(*shape, scale=_init_scale(name, shape)) for name, shape in shapes.items()}
    for name in params:
        if name.endswith("norm.weight"):
            params[name] = params[name] + 1.0
    params["lm_head.weight"] = params["token_embedding.weight"]
    return params


def gpt_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    batch, seq, prompt = (1, 7, 4) if hidden else (2, 6, 3)
    config = GPTConfig(vocab_size=13 if hidden else 11, block_size=10, n_layers=1 if hidden else 2,
                       n_heads=4 if hidden else 2, d_model=16 if hidden else 8)
    params, heads = _random_gpt_params(ctx, config), config.n_heads
    idx = ctx.randint(0, config.vocab_size, batch, seq)
    cases = [Case(f"full pass of {seq} tokens, no cache", (params, idx, heads)),
             Case(f"prompt of {prompt} tokens, no cache", (params, idx[:, :prompt], heads))]
    _, cache = gpt_forward_reference(params, idx[:, :prompt], heads)
    for t in range(prompt, seq):
        cases.append(Case(f"token {t + 1} of {seq}, {t} cached", (params, idx[:, t:t + 1], heads), {"cache": cache}))
        _, cache = gpt_forward_reference(params, idx[:, t:t + 1], heads, cache)
    _, two_cached = gpt_forward_reference(params, idx[:, :2], heads)
    return cases + [Case(f"{seq - 2} new tokens at once, 2 cached", (params, idx[:, 2:], heads), {"cache": two_cached})]


def _linear(params: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return F.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))


def _norm(params: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return layer_norm(x, params[f"{name}.weight"], params[f"{name}.bias"])


def _gpt_variant(shift_positions: bool = True, shift_mask: bool = True, causal: bool = True, final_norm: bool = True):
    """The GPT forward pass with a KV cache, written out; the switches give the classic cache bugs, and a forward
    pass without the final LayerNorm."""
    def forward(params, idx, n_heads, cache=None):
        new, past = idx.size(1), 0 if cache is None else cache[0][0].size(-2)
        start = past if shift_positions else 0
        x = params["token_embedding.weight"][idx] + params["position_embedding.embedding.weight"][start:start + new]
        mask = causal_mask(new, idx.device, past_len=past)
        if not shift_mask:
            mask = mask.tril()  # aligned top-left, as is_causal=True does with a cache
        n_layers = sum(name.endswith("self_attn.q_proj.weight") for name in params)
        updated = []
        for i in range(n_layers):
            block = f"blocks.{i}"
            h = _norm(params, f"{block}.self_attn_residual.norm", x)
            q, k, v = (split_heads(_linear(params, f"{block}.self_attn.{p}_proj", h), n_heads) for p in "qkv")
            if cache is not None:
                k, v = torch.cat([cache[i][0], k], -2), torch.cat([cache[i][1], v], -2)
            updated.append((k, v))
            out, _ = scaled_dot_product_attention(q, k, v, mask if causal else None)
            x = x + _linear(params, f"{block}.self_attn.out_proj", merge_heads(out))
            h = _norm(params, f"{block}.ff_residual.norm", x)
            x = x + _linear(params, f"{block}.ff.w2", gelu(_linear(params, f"{block}.ff.w1", h)))
        return F.linear(_norm(params, "norm", x) if final_norm else x, params["lm_head.weight"]), updated
    return forward


def _cache_of_new_tokens_only(params, idx, n_heads, cache=None):
    logits, updated = gpt_forward_reference(params, idx, n_heads, cache)
    new = idx.size(1)
    return logits, [(keys[..., -new:, :], values[..., -new:, :]) for keys, values in updated]


GPT_FORWARD = Exercise(
    name="gpt_forward",
    lesson=LESSON,
    reference=gpt_forward_reference,
    make_cases=gpt_cases,
    points=3,
    mistakes=(
        Mistake("positions restart at 0", _gpt_variant(shift_positions=False),
                "new tokens sit at positions past .. past + T - 1: add position embeddings from row past on."),
        Mistake("causal mask not shifted by the cache", _gpt_variant(shift_mask=False),
                "with past cached keys the mask is (T, past + T) and query i sees keys j <= past + i: "
                "torch.ones(T, past + T).tril(diagonal=past). (is_causal=True aligns it top-left, which is wrong "
                "here.)"),
        Mistake("no causal mask", _gpt_variant(causal=False),
                "without a causal mask a token sees later tokens of its own chunk; the cached pass then "
                "disagrees with generation one token at a time."),
        Mistake("no final LayerNorm", _gpt_variant(final_norm=False),
                "pre-LN blocks leave the residual stream unnormalised: apply the final LayerNorm, params['norm.weight'] "
                "and params['norm.bias'], before the output head."),
        Mistake("cache holds only the new positions", _cache_of_new_tokens_only,
                "return the concatenated keys and values (cached + new), so the next call sees every earlier token."),
    ),
    hints=(
        "past is the length of the cached keys (0 without a cache). Embed the tokens and add the position "
        "embeddings of rows past to past + T: the new tokens come after the cached ones.",
        "Per block (pre-LN): normalise, project q, k, v with `F.linear` and split the heads; append the new keys "
        "and values to the cached ones along the sequence axis and keep them for the new cache; attend with a "
        "causal mask (T, past + T) in which query i sees the keys up to past + i; add the output projection, then "
        "the GELU feed-forward of the normalised stream. Finish with the final LayerNorm and the tied output head.",
        "mask = torch.ones(T, past + T, dtype=torch.bool).tril(diagonal=past); k = torch.cat([cached_k, k], "
        "dim=-2); x = x + w2(gelu(w1(LN(x)))); logits = F.linear(F.layer_norm(x, (d_model,), w, b, eps=1e-5), "
        "params['lm_head.weight']). F.gelu (exact) matches the model.",
    ),
    difficulty=3,
    minutes=40,
)

EXERCISES = (LABEL_SMOOTHING_LOSS, NOAM_LR, TOP_K_FILTER, NUMPY_TOP_K_FILTER, TOP_P_FILTER, SAMPLE_NEXT,
             BEAM_SEARCH, GPT_FORWARD)
