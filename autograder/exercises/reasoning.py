"""Lesson 07-reasoning: chain-of-thought examples and their training loss, answer extraction,
self-consistency voting, fitting a scaling law, and GRPO's advantage and objective."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.exercise import Case, CaseContext, Exercise, Mistake
from tfcourse import reasoning as ref
from tfcourse import rl

LESSON = "07-reasoning"
PLAIN_PYTHON = (torch.float64,)  # strings and integers: one pass, no dtype to vary
LEAST_SQUARES_FITS = ("numpy.polyfit", "numpy.polynomial.polynomial.polyfit")


def _operands(ctx: CaseContext, n: int, max_digits: int) -> list[tuple[int, int]]:
    """``n`` pairs of non-negative integers, each below ``10**d`` for its own random ``d`` in 1..``max_digits``."""
    digits = torch.randint(1, max_digits + 1, (n, 2), generator=ctx.generator)
    fractions = torch.rand(n, 2, generator=ctx.generator, dtype=torch.float64)
    return [(int(fa * 10 ** da), int(fb * 10 ** db)) for (da, db), (fa, fb) in zip(digits.tolist(), fractions.tolist())]


# --- make_addition_example -------------------------------------------------------------------------

def addition_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    if hidden:
        problems = [(a, b, cot) for (a, b), cot in zip(_operands(ctx, 6, 7), (True, False) * 3)]
    else:
        problems = [(58, 67, True), (58, 67, False), (5, 123, True), (999, 1, True), (0, 0, True), (7, 2, False),
                    (4096, 95, True), (31, 45, True)]
    return [Case(f"{a}+{b}, chain of thought {cot}", (a, b, cot)) for a, b, cot in problems]


def _addition_variant(most_significant_first: bool = False, carry: bool = True, pad: bool = True,
                      terminator: str = ref.TERMINATOR, carry_out: bool = False):
    """A wrong ``make_addition_example``: steps in reading order, no carry, no zero padding, no terminator, or each
    step written with the carry out of its own column instead of the carry into it."""
    def make(a: int, b: int, chain_of_thought: bool) -> tuple[str, str]:
        width = max(len(str(a)), len(str(b))) if pad else min(len(str(a)), len(str(b)))
        columns = list(zip(str(a).zfill(width)[::-1][:width], str(b).zfill(width)[::-1][:width]))
        steps, carried = [], 0
        for x, y in columns[::-1] if most_significant_first else columns:
            total = int(x) + int(y) + carried
            written = total // 10 if carry_out else carried
            steps.append(f"{x}+{y}+{written}={total}")
            carried = total // 10 if carry else 0
        answer = f"{a + b}{terminator}"
        return f"{a}+{b}=", f"{','.join(steps)},={answer}" if chain_of_thought else answer
    return make


MAKE_ADDITION_EXAMPLE = Exercise(
    name="make_addition_example",
    lesson=LESSON,
    reference=ref.make_addition_example,
    make_cases=addition_cases,
    points=2,
    dtypes=PLAIN_PYTHON,
    mistakes=(
        Mistake("no terminator", _addition_variant(terminator=""),
                'every target ends with the terminator ".", which tells the model (and extract_answer) '
                "where the answer stops."),
        Mistake("most significant column first", _addition_variant(most_significant_first=True),
                "the scratchpad works like column addition on paper: the ones column first, then the tens, "
                "so that each carry is known before the column that needs it."),
        Mistake("carry not passed on", _addition_variant(carry=False),
                "the third number of each step is the carry out of the previous column: the tens digit of "
                "the previous column's sum (0 for the first column)."),
        Mistake("shorter operand not padded", _addition_variant(pad=False),
                "pad the shorter operand with leading zeros, so there is one step per digit of the longer one: "
                '5+123 gives "5+3+0=8,0+2+0=2,0+1+0=1,=128.".'),
        Mistake("carry out written for the carry in", _addition_variant(carry_out=True),
                "each step writes the carry into its column, the one computed at the previous column, then its sum: "
                'update the carry after writing the step ("8+7+0=15,5+6+1=12", not "8+7+1=15,5+6+1=12").'),
    ),
    hints=(
        'The prompt is the two numbers joined by "+" and ending in "="; the direct target is the sum followed by '
        'the terminator ".". The chain-of-thought target is the steps joined by ",", then ",=" and the answer with '
        'its ".".',
        "Pad both operands with leading zeros to the longer one's length (`str.zfill`) and reverse them, so the "
        "ones column comes first. Keep a carry, 0 at the start: each step writes the carry into its column; the "
        "carry out is the tens digit of the column's sum.",
        'Keep a carry, starting at 0: for each column, s = x + y + carry; write f"{x}+{y}+{carry}={s}"; then carry '
        "= s // 10.",
    ),
    difficulty=2,
    minutes=20,
)


# --- extract_answer -----------------------------------------------------------------------------------

EXTRACT_TEXTS = ("125.", "58+67=125.", "8+7+0=15,5+6+1=12,=125.", "58+67=8+7+0=15,5+6+1=12,=125.",
                 "58+67=125.3+4=7.", "=125.\n9+9=18.", "0+0=0,=0.", "58+67=12", "8+7+0=15,5+", "", "=12a.",
                 "=.", "no digits here.", "=1 2.")


def extract_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    if not hidden:
        return [Case(repr(text), (text,)) for text in EXTRACT_TEXTS]
    cases = []
    for (a, b), cot in zip(_operands(ctx, 4, 6), (True, False, True, False)):
        prompt, target = ref.make_addition_example(a, b, cot)
        for text in (target, prompt + target, prompt + target + "1+1=2.", (prompt + target)[:-1]):
            cases.append(Case(repr(text), (text,)))
    return cases


def _extract_variant(pattern: str, cut_at_terminator: bool = True, require_terminator: bool = True,
                     last: bool = False):
    """A wrong ``extract_answer`` that matches ``pattern`` in the text (or the text before the first ".")."""
    def extract(text: str) -> int | None:
        head, terminator, _ = text.partition(ref.TERMINATOR)
        if require_terminator and not terminator:
            return None
        found = re.findall(pattern, head if cut_at_terminator else text)
        return int(found[-1 if last else 0]) if found else None
    return extract


EXTRACT_ANSWER = Exercise(
    name="extract_answer",
    lesson=LESSON,
    reference=ref.extract_answer,
    make_cases=extract_cases,
    points=2,
    dtypes=PLAIN_PYTHON,
    mistakes=(
        Mistake("first number instead of the answer", _extract_variant(r"\d+"),
                'the answer is the number right before the terminator, after the last "=", not the first number '
                "in the text (that is an operand)."),
        Mistake("terminator not required", _extract_variant(r"(?:^|=)(\d+)$", require_terminator=False),
                'a text without "." has not finished its answer (the model stopped early): return None.'),
        Mistake("text after the terminator used", _extract_variant(r"(?:^|=)(\d+)\.", cut_at_terminator=False,
                                                                    last=True),
                'cut the text at its first "."; whatever the model generates after the terminator is not part '
                "of the answer."),
    ),
    hints=(
        'text.partition(".") splits at the first terminator: (head, ".", rest). No "." means no answer.',
        'The answer is the run of digits at the end of head, right after the last "=" or at the very start.',
        r're.search(r"(?:^|=)(\d+)$", head) finds exactly that; return int(match.group(1)), or None.',
    ),
    difficulty=2,
    minutes=15,
)


# --- majority_vote ------------------------------------------------------------------------------------

VOTES = ([3, 5, 5, 3, 5], [None, None, 4], [3, 1, 1, 3], [3, 1, 5, 1, 3, 5], [2, None, 2, None, None],
         ["b", "a", "a"], [7], [], [None, None])


def vote_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    if not hidden:
        return [Case(repr(votes), (votes,)) for votes in VOTES]
    cases = []
    for length in (5, 8, 11):
        draws = torch.randint(-1, 4, (length,), generator=ctx.generator).tolist()
        votes = [None if draw < 0 else 100 + draw for draw in draws]
        cases.append(Case(repr(votes), (votes,)))
    return cases


def _vote_variant(count_none: bool = False, tie_break: str = "first"):
    """A wrong ``majority_vote``: None counted as an answer, or ties won by the last seen or smallest answer."""
    def vote(answers: Sequence[Hashable | None]) -> Hashable | None:
        counts = Counter(a for a in answers if count_none or a is not None)
        if tie_break == "last":
            return max(reversed(counts.items()), key=lambda item: item[1])[0]
        if tie_break == "smallest":
            return max(sorted(counts), key=counts.get)
        return counts.most_common(1)[0][0]
    return vote


MAJORITY_VOTE = Exercise(
    name="majority_vote",
    lesson=LESSON,
    reference=ref.majority_vote,
    make_cases=vote_cases,
    points=1,
    dtypes=PLAIN_PYTHON,
    mistakes=(
        Mistake("None counted as an answer", _vote_variant(count_none=True),
                "None means a sample had no answer; leave it out of the count, so three unreadable samples do "
                "not outvote one answer."),
        Mistake("ties go to the last answer seen", _vote_variant(tie_break="last"),
                "a tie goes to the answer that appears first in the list; a stable sort followed by [-1] "
                "picks the last one."),
        Mistake("ties go to the smallest answer", _vote_variant(tie_break="smallest"),
                "a tie goes to the answer that appears first in the list, not the smallest (iterating over "
                "a set or sorted values loses that order)."),
    ),
    hints=(
        "`collections.Counter` counts hashable things; leave the None answers out of what it counts.",
        "`Counter.most_common(1)` gives the most common answer with its count, and keeps first-seen order among "
        "equal counts.",
        "An empty Counter means no answers at all: return counts.most_common(1)[0][0] if counts else None.",
    ),
    difficulty=1,
    minutes=10,
)


# --- self_consistency_accuracy -------------------------------------------------------------------------

def self_consistency_accuracy_reference(completions: list[list[str]], answers: list[int]) -> float:
    """Fraction of questions whose majority-voted answer is right.

    ``completions[i]`` are the sampled completions for question ``i``, ``answers[i]`` its true
    sum; each question's vote is ``majority_vote`` of ``extract_answer`` over its completions.
    """
    votes = [ref.majority_vote([ref.extract_answer(text) for text in samples]) for samples in completions]
    return sum(vote == answer for vote, answer in zip(votes, answers)) / len(answers)


def _sampled_completion(a: int, b: int, kind: int) -> str:
    """One completion for ``a+b=``: 0, 1 right (scratchpad, direct); 2, 3 wrong by 1 or 10; 4 cut off."""
    _, target = ref.make_addition_example(a, b, chain_of_thought=kind != 1)
    if kind in (2, 3):
        return target.replace(f"={a + b}.", f"={a + b + 10 ** (kind - 2)}.")
    return target[:-3] if kind == 4 else target


def consistency_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    settings = [(6, 5), (3, 7)] if hidden else [(4, 3), (5, 5), (2, 1)]
    cases = []
    for n_questions, n_samples in settings:
        pairs = _operands(ctx, n_questions, 3)
        kinds = torch.randint(0, 5, (n_questions, n_samples), generator=ctx.generator).tolist()
        completions = [[_sampled_completion(a, b, kind) for kind in row] for (a, b), row in zip(pairs, kinds)]
        answers = [a + b for a, b in pairs]
        cases.append(Case(f"{n_questions} questions, {n_samples} samples each", (completions, answers)))
    return cases


def _per_sample_accuracy(completions: list[list[str]], answers: list[int]) -> float:
    scored = [ref.extract_answer(text) == answer for samples, answer in zip(completions, answers) for text in samples]
    return sum(scored) / len(scored)


def _count_correct(completions: list[list[str]], answers: list[int]) -> int:
    return round(self_consistency_accuracy_reference(completions, answers) * len(answers))


def _first_sample_accuracy(completions: list[list[str]], answers: list[int]) -> float:
    return self_consistency_accuracy_reference([samples[:1] for samples in completions], answers)


SELF_CONSISTENCY_ACCURACY = Exercise(
    name="self_consistency_accuracy",
    lesson=LESSON,
    reference=self_consistency_accuracy_reference,
    make_cases=consistency_cases,
    points=1,
    dtypes=PLAIN_PYTHON,
    mistakes=(
        Mistake("no vote: accuracy of single samples", _per_sample_accuracy,
                "vote first: one answer per question, majority_vote of the answers extracted from its samples; "
                "then score the questions."),
        Mistake("only the first sample", _first_sample_accuracy,
                "self-consistency votes over all the samples of a question, not just the first."),
        Mistake("a count, not a fraction", _count_correct,
                "divide the number of questions answered correctly by the number of questions."),
    ),
    hints=(
        "For each question, extract the answer of each of its samples with your `extract_answer`, then vote with "
        "your `majority_vote`.",
        "A question counts as solved when its vote equals its true answer (a None vote never does); the accuracy is"
        " a fraction of the questions.",
        "Return solved / number of questions, a float between 0 and 1.",
    ),
    difficulty=1,
    minutes=10,
)


# --- completion_loss --------------------------------------------------------------------------------

def completion_loss_reference(logits: Tensor, tokens: Tensor, prompt_lengths: Tensor, *, skip: int = 0,
                              shift: int = 1, whole_sequence: bool = False, per_sequence: bool = False) -> Tensor:
    """Mean cross-entropy over the target tokens only: the chain-of-thought training loss.

    ``logits``: ``(batch, T, vocab)``, the model's outputs for ``tokens[:, :-1]``;
    ``tokens``: ``(batch, T + 1)``, each row a prompt followed by its target;
    ``prompt_lengths``: ``(batch,)``. Logit ``t`` predicts ``tokens[:, t + 1]`` and is learned
    when ``t + 1 >= prompt_lengths[b]``; the loss is the mean of
    ``-log softmax(logits[b, t])[tokens[b, t + 1]]`` over the learned positions of every row.
    The keyword options make the known wrong versions.
    """
    steps = logits.size(1)
    targets = tokens[:, shift:shift + steps]
    predicted_position = torch.arange(1, steps + 1, device=tokens.device)
    learned = predicted_position >= prompt_lengths[:, None] + skip
    if whole_sequence:
        learned = torch.ones_like(learned)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    if per_sequence:
        return ((nll * learned).sum(1) / learned.sum(1)).mean()
    return nll[learned].mean()


def completion_loss_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(3, 9, 7), (1, 4, 5)] if hidden else [(4, 8, 11), (2, 12, 6), (1, 5, 13)]
    cases = []
    for batch, steps, vocab in sizes:
        logits, tokens = ctx.randn(batch, steps, vocab, scale=2.0), ctx.randint(0, vocab, batch, steps + 1)
        prompt_lengths = ctx.randint(1, steps - 1, batch)
        cases.append(Case(f"batch {batch}, {steps + 1} tokens, vocabulary {vocab}", (logits, tokens, prompt_lengths)))
    same = torch.full((3,), 4, device=ctx.device)
    return cases + [Case("equal prompt lengths", (ctx.randn(3, 7, 9), ctx.randint(0, 9, 3, 8), same))]


COMPLETION_LOSS = Exercise(
    name="completion_loss",
    lesson=LESSON,
    reference=completion_loss_reference,
    gradients=True,
    make_cases=completion_loss_cases,
    points=2,
    mistakes=(
        Mistake("prompt tokens included", partial(completion_loss_reference, whole_sequence=True),
                "the prompt is given, not generated: leave out the positions whose predicted token is part of "
                "the prompt (t + 1 < prompt_lengths[b])."),
        Mistake("first target token left out", partial(completion_loss_reference, skip=1),
                "the first target token sits at index prompt_lengths[b] and is predicted by logit "
                "prompt_lengths[b] - 1; keep logit t when t + 1 >= prompt_lengths[b]."),
        Mistake("targets not shifted", partial(completion_loss_reference, shift=0),
                "logit t predicts the NEXT token: the targets are tokens[:, 1:], not tokens[:, :-1]."),
        Mistake("mean of per-sequence means", partial(completion_loss_reference, per_sequence=True),
                "average over all learned tokens of the batch at once, so every token weighs the same "
                "whatever the length of its row."),
    ),
    hints=(
        "Logit t predicts token t + 1: the targets are the tokens shifted by one. `F.cross_entropy` with "
        "`reduction='none'` wants the classes in dimension 1, so transpose the logits to (batch, vocab, T).",
        "Learn from logit t when the token it predicts, t + 1, is past the prompt: compare the positions 1..T "
        "(`torch.arange`) with each row's prompt length, broadcasting (1, T) against (batch, 1).",
        "Take the mean of the per-token losses where that mask is True: losses[mask].mean().",
    ),
    difficulty=2,
    minutes=15,
)


# --- fit_power_law ----------------------------------------------------------------------------------

def power_law_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    def noisy_law(n: int, low: float, high: float) -> tuple[Tensor, Tensor]:
        sizes = 10 ** (low + (high - low) * torch.rand(n, generator=ctx.generator, dtype=ctx.dtype))
        a = 2.0 + 20.0 * torch.rand((), generator=ctx.generator, dtype=ctx.dtype)
        alpha = 0.05 + 0.5 * torch.rand((), generator=ctx.generator, dtype=ctx.dtype)
        return sizes, a * sizes ** -alpha * torch.exp(ctx.randn(n, scale=0.02).cpu())

    if hidden:
        return [Case("noisy losses, 9 sizes", noisy_law(9, 2.0, 7.0)),
                Case("noisy losses, 3 sizes", noisy_law(3, 4.0, 5.0))]
    sizes = torch.tensor([1e3, 1e4, 1e5, 1e6], dtype=ctx.dtype)
    return [Case("exact power law, a=5, alpha=0.3", (sizes, 5.0 * sizes ** -0.3)),
            Case("noisy losses, 6 sizes", noisy_law(6, 3.0, 8.0)),
            Case("two points", (sizes[:2], torch.tensor([3.0, 2.0], dtype=ctx.dtype))),
            Case("plain Python lists", tuple(values.tolist() for values in noisy_law(5, 2.0, 6.0)))]


def _power_law_variant(negate: bool = True, exponentiate: bool = True, swap_axes: bool = False,
                       log: Callable[[np.ndarray], np.ndarray] = np.log):
    """A wrong fit: slope not negated, intercept left as log(a), log(size) regressed on log(loss), or logs taken
    with ``log`` (``np.log10``) but the intercept undone with ``np.exp``."""
    def fit(sizes, losses) -> tuple[float, float]:
        x, y = log(np.asarray(sizes, dtype=np.float64)), log(np.asarray(losses, dtype=np.float64))
        slope, intercept = np.polyfit(*((y, x) if swap_axes else (x, y)), deg=1)
        return float(np.exp(intercept) if exponentiate else intercept), float(-slope if negate else slope)
    return fit


FIT_POWER_LAW = Exercise(
    name="fit_power_law",
    lesson=LESSON,
    reference=ref.fit_power_law,
    make_cases=power_law_cases,
    points=2,
    numpy=True,
    forbidden=LEAST_SQUARES_FITS,
    mistakes=(
        Mistake("slope not negated", _power_law_variant(negate=False),
                "the fitted slope of log(loss) against log(size) is -alpha; return alpha = -slope (positive "
                "when the loss falls with size)."),
        Mistake("a left in log space", _power_law_variant(exponentiate=False),
                "the intercept of the line is log(a); return a = exp(intercept)."),
        Mistake("axes swapped", _power_law_variant(swap_axes=True),
                "regress log(loss) (the y values) on log(size) (the x values), not the other way round."),
        Mistake("log10 undone with exp", _power_law_variant(log=np.log10),
                "with base-10 logs the intercept is log10(a): a = 10 ** intercept, not np.exp(intercept) (or take "
                "natural logs, np.log, throughout)."),
    ),
    hints=(
        "Take logs: in log(size) and log(loss) the law is a straight line, of slope -alpha and intercept log(a).",
        "Least squares for a line: a design matrix whose columns are log(size) and ones, solved with "
        "`np.linalg.lstsq`, gives the slope and the intercept (or the closed form: the covariance of x and y over "
        "the variance of x). Work in float64.",
        "A = np.stack([x, np.ones_like(x)], axis=1); (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None); "
        "return float(np.exp(intercept)), float(-slope).",
    ),
    difficulty=2,
    minutes=15,
)



# --- group_relative_advantage ----------------------------------------------------------------------

def advantage_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    def right_or_wrong(n_prompts: int, group_size: int, p: float = 0.4) -> Tensor:
        """0/1 rewards: each completion right with probability about ``p``."""
        return (torch.rand(n_prompts, group_size, generator=ctx.generator) < p).to(ctx.device, ctx.dtype)

    if hidden:
        return [Case("5 prompts x 6 completions, 0/1 rewards", (right_or_wrong(5, 6, 0.5),)),
                Case("3 prompts x 4 completions, graded rewards", (ctx.randn(3, 4),))]
    same = right_or_wrong(3, 8)
    same[0], same[2] = 1.0, 0.0
    return [
        Case("4 prompts x 8 completions, 0/1 rewards", (right_or_wrong(4, 8),)),
        Case("groups whose completions all earn the same reward", (same,),
             rule="a group whose rewards are all equal gets advantage 0: eps keeps 0 / 0 away"),
        Case("graded rewards, 3 prompts x 5 completions", (ctx.randn(3, 5, scale=2.0) + 1.0,)),
        Case("groups of 2", (ctx.randn(6, 2),)),
        Case("rewards close together (a small std, where eps counts)", (1.0 + ctx.randn(2, 4, scale=1e-5),),
             rule="add eps to the group's standard deviation, outside the square root"),
        Case("eps=0.5", (right_or_wrong(3, 4, 0.5),), {"eps": 0.5}),
    ]


def _advantage_variant(dim: int | None = -1, correction: int = 1, eps_in_sqrt: bool = False, with_eps: bool = True,
                       divide: bool = True):
    """A wrong ``group_relative_advantage``: statistics over the whole batch (``dim=None``) or across prompts
    (``dim=0``), the population std (``correction=0``), eps under the square root or left out, or no division."""
    def advantage(rewards: Tensor, eps: float = 1e-6) -> Tensor:
        dims = tuple(range(rewards.dim())) if dim is None else (dim,)
        centred = rewards - rewards.mean(dim=dims, keepdim=True)
        if not divide:
            return centred
        variance = rewards.var(dim=dims, keepdim=True, correction=correction)
        if eps_in_sqrt:
            return centred / torch.sqrt(variance + eps)
        return centred / (variance.sqrt() + (eps if with_eps else 0.0))
    return advantage


GROUP_RELATIVE_ADVANTAGE = Exercise(
    name="group_relative_advantage",
    lesson=LESSON,
    reference=rl.group_relative_advantage,
    make_cases=advantage_cases,
    points=1,
    mistakes=(
        Mistake("population std instead of the sample std", _advantage_variant(correction=0),
                "use the group's sample standard deviation, which divides by group_size - 1 (torch.std's default, "
                "correction=1), not by group_size."),
        Mistake("normalised over the whole batch", _advantage_variant(dim=None),
                "each prompt's completions are compared with each other only: take the mean and the std of each row "
                "(dim=-1, keepdim=True), not of the whole batch."),
        Mistake("normalised across prompts", _advantage_variant(dim=0),
                "rows are prompts and columns a prompt's completions: the statistics are per row (dim=-1), over the "
                "completions of one prompt."),
        Mistake("no eps", _advantage_variant(with_eps=False),
                "a group whose rewards are all equal has std 0: add eps to the std, so that 0 / (0 + eps) = 0 instead "
                "of NaN."),
        Mistake("eps under the square root", _advantage_variant(eps_in_sqrt=True),
                "add eps to the standard deviation itself, (r - mean) / (std + eps), not to the variance under the "
                "square root."),
        Mistake("not divided by the std", _advantage_variant(divide=False),
                "after subtracting the group's mean, divide by the group's standard deviation (plus eps)."),
    ),
    hints=(
        "Each row of `rewards` is one prompt's group of completions: every statistic is taken along the last "
        "dimension, with keepdim=True so that it broadcasts back over its row.",
        "The std is the sample standard deviation (divisor group_size - 1), which is what `Tensor.std` computes by "
        "default; eps is added to it, outside the square root.",
        "mean = rewards.mean(dim=-1, keepdim=True); std = rewards.std(dim=-1, keepdim=True); "
        "return (rewards - mean) / (std + eps).",
    ),
    difficulty=1,
    minutes=10,
)


# --- grpo_objective -------------------------------------------------------------------------------

def _completion_mask(ctx: CaseContext, n: int, steps: int, lengths: list[int] | None = None) -> Tensor:
    """``(n, steps)`` bool: each row True on one run of tokens (the completion after its prompt), at least one."""
    lengths = lengths or ctx.randint(1, steps + 1, n).tolist()
    starts = [int(torch.randint(0, steps - length + 1, (), generator=ctx.generator)) for length in lengths]
    positions = torch.arange(steps)
    return torch.stack([(positions >= start) & (positions < start + length)
                        for start, length in zip(starts, lengths)]).to(ctx.device)


def _objective_inputs(ctx: CaseContext, n: int, steps: int, drift: float = 0.3, lengths: list[int] | None = None,
                      same_policies: bool = False) -> tuple[Tensor, ...]:
    """``(logprobs, old_logprobs, ref_logprobs, advantages, mask)`` for ``n`` completions of up to ``steps``
    tokens; the old and reference log-probabilities differ from the policy's by about ``drift``."""
    logprobs = torch.log_softmax(ctx.randn(n, steps, 5), dim=-1)[..., 0]
    if same_policies:
        old, reference = logprobs.clone(), logprobs.clone()
    else:
        old, reference = logprobs + ctx.randn(n, steps, scale=drift), logprobs + ctx.randn(n, steps, scale=drift)
    return logprobs, old, reference, ctx.randn(n), _completion_mask(ctx, n, steps, lengths)


def objective_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    if hidden:
        return [Case("6 completions of up to 7 tokens", _objective_inputs(ctx, 6, 7)),
                Case("3 completions, ratios far from 1", _objective_inputs(ctx, 3, 5, drift=1.0)),
                Case("clip_eps=0.3, kl_coef=0.1", _objective_inputs(ctx, 4, 6), {"clip_eps": 0.3, "kl_coef": 0.1})]
    return [
        Case("4 completions of up to 6 tokens", _objective_inputs(ctx, 4, 6)),
        Case("ratios far from 1: clipped above and below", _objective_inputs(ctx, 5, 4, drift=1.0),
             rule="the minimum of the unclipped and the clipped term, with the ratio (not the advantage) clipped"),
        Case("completions of 1 and of 8 tokens", _objective_inputs(ctx, 2, 8, lengths=[1, 8]),
             rule="average each completion's tokens first, then the completions: each completion weighs the same"),
        Case("policy, old policy and reference all equal", _objective_inputs(ctx, 3, 5, same_policies=True)),
        Case("clip_eps=0.1, kl_coef=0.5", _objective_inputs(ctx, 4, 5), {"clip_eps": 0.1, "kl_coef": 0.5}),
    ]


def _objective_variant(pick=torch.minimum, clip_product: bool = False, kl_sign: float = -1.0,
                       kl_reversed: bool = False, k1: bool = False, all_tokens: bool = False, use_mask: bool = True,
                       sign: float = -1.0, ratio_inverted: bool = False):
    """A wrong ``grpo_objective``: ``max`` for ``min``, the product clipped instead of the ratio, the KL added,
    reversed or estimated by ``log pi - log pi_ref`` (k1), the mean over all tokens, the mask left out, the
    objective itself returned, or the ratio upside down."""
    def objective(logprobs: Tensor, old_logprobs: Tensor, ref_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                  clip_eps: float = 0.2, kl_coef: float = 0.04) -> Tensor:
        log_ratio = old_logprobs - logprobs if ratio_inverted else logprobs - old_logprobs
        ratio, advantage = torch.exp(log_ratio), advantages[:, None]
        clipped = (ratio * advantage).clamp(1 - clip_eps, 1 + clip_eps) if clip_product \
            else ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantage
        surrogate = pick(ratio * advantage, clipped)
        d = logprobs - ref_logprobs if kl_reversed else ref_logprobs - logprobs
        kl = -d if k1 else torch.exp(d) - d - 1
        weights = mask.to(logprobs.dtype) if use_mask else torch.ones_like(logprobs)
        per_token = (surrogate + kl_sign * kl_coef * kl) * weights
        if all_tokens:
            return sign * per_token.sum() / weights.sum()
        return sign * (per_token.sum(dim=-1) / weights.sum(dim=-1)).mean()
    return objective


GRPO_OBJECTIVE = Exercise(
    name="grpo_objective",
    lesson=LESSON,
    reference=rl.grpo_objective,
    gradients=True,
    make_cases=objective_cases,
    points=2,
    mistakes=(
        Mistake("max instead of min", _objective_variant(pick=torch.maximum),
                "take the minimum of the unclipped and the clipped term: the pessimistic one, so that moving the "
                "ratio past the clip range never pays."),
        Mistake("product clipped instead of the ratio", _objective_variant(clip_product=True),
                "clip the ratio to [1 - clip_eps, 1 + clip_eps], then multiply by the advantage; the advantage "
                "itself is never clipped."),
        Mistake("ratio upside down", _objective_variant(ratio_inverted=True),
                "the ratio is new over old: exp(logprobs - old_logprobs)."),
        Mistake("KL added instead of subtracted", _objective_variant(kl_sign=1.0),
                "the objective subtracts kl_coef * KL (it penalises moving away from the reference); the loss, its "
                "negative, therefore adds it."),
        Mistake("KL in the wrong direction", _objective_variant(kl_reversed=True),
                "the estimator uses d = ref_logprobs - logprobs: exp(d) - d - 1, not the same with the two "
                "log-probabilities swapped."),
        Mistake("KL estimated by the log-ratio", _objective_variant(k1=True),
                "use the k3 estimator exp(d) - d - 1 with d = ref_logprobs - logprobs: unbiased and never negative, "
                "unlike logprobs - ref_logprobs alone."),
        Mistake("mean over all tokens", _objective_variant(all_tokens=True),
                "average each completion's tokens first (divide its sum by its own number of tokens), then take the "
                "mean over completions, so that a long completion does not count more than a short one."),
        Mistake("mask not applied", _objective_variant(use_mask=False),
                "only the completion's tokens count: multiply by the mask and divide by each row's number of True "
                "entries, not by the row's full length."),
        Mistake("objective returned instead of the loss", _objective_variant(sign=1.0),
                "return the loss to minimise: minus the objective J."),
    ),
    hints=(
        "Work per token, on (N, T) tensors: the ratio exp(logprobs - old_logprobs), the advantages broadcast as "
        "(N, 1), then the two surrogate terms and the KL term; the mask decides which tokens count.",
        "`torch.clamp` clips the ratio and `torch.minimum` keeps the smaller of the two terms. The KL term is the "
        "exponential of the reference's log-probability minus the policy's, minus that difference, minus one. "
        "Average each row over its masked tokens, then average the rows, and negate.",
        "ratio = torch.exp(logprobs - old_logprobs); A = advantages[:, None]; "
        "surrogate = torch.minimum(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A); "
        "d = ref_logprobs - logprobs; kl = torch.exp(d) - d - 1; m = mask.float(); "
        "return -(((surrogate - kl_coef * kl) * m).sum(-1) / m.sum(-1)).mean().",
    ),
    difficulty=3,
    minutes=25,
)

EXERCISES = (MAKE_ADDITION_EXAMPLE, COMPLETION_LOSS, EXTRACT_ANSWER, MAJORITY_VOTE, SELF_CONSISTENCY_ACCURACY,
             FIT_POWER_LAW, GROUP_RELATIVE_ADVANTAGE, GRPO_OBJECTIVE)
