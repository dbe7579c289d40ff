"""Reasoning learned by reinforcement: group-relative policy optimisation (GRPO) with a verifiable reward.

A model that already writes addition scratchpads (trained by imitation, :mod:`tfcourse.gpt_tasks`)
samples a *group* of ``G`` completions for each prompt. Each completion earns a reward that a
program can check: 1 when its extracted answer is the true sum, else 0 (DeepSeek-R1's accuracy
reward). GRPO (Shao et al. 2024, DeepSeekMath) needs no value network: a completion's advantage
is its reward standardised within its own group,

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps),

so it is pushed up when it beat its siblings and down when it did worse. The policy then
maximises PPO's clipped surrogate of the token log-probabilities, minus a KL penalty that
keeps it near the imitation-trained reference model::

    ratio_t = exp(log pi(o_t) - log pi_old(o_t))
    J = mean_i 1/|o_i| sum_t [ min(ratio_t A_i, clip(ratio_t, 1 - eps, 1 + eps) A_i) - beta KL_t ]
    KL_t = exp(log pi_ref(o_t) - log pi(o_t)) - (log pi_ref(o_t) - log pi(o_t)) - 1

:func:`grpo_train` runs the loop through :func:`tfcourse.training.train`: each batch is a fresh
set of sampled groups, scored, with their advantages and the reference's log-probabilities.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tfcourse.distributed import resolve_device
from tfcourse.gpt_tasks import IGNORE_INDEX, AdditionTask, complete, encode_examples, longest_target, random_operand
from tfcourse.model import GPT
from tfcourse.reasoning import TERMINATOR, extract_answer
from tfcourse.training import TrainResult, batch_seed, train

Problem = tuple[int, int]
# What one GRPO update reads (``train`` moves it to the device): the inputs ``x (N, T)`` and
# next tokens ``y (N, T)`` of the N = prompts * group_size completions (IGNORE_INDEX outside
# the completion), their advantages ``(N,)`` and their reference log-probabilities ``(N, T)``.
Rollout = tuple[Tensor, Tensor, Tensor, Tensor]


def group_relative_advantage(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """GRPO's advantage: each reward standardised within its group.

        A[p, g] = (r[p, g] - mean_g r[p]) / (std_g r[p] + eps)

    ``rewards``: ``(n_prompts, group_size)``, one row per prompt's group of completions, with
    ``group_size >= 2``. ``std`` is the *sample* standard deviation of the group (divisor
    ``group_size - 1``, ``torch.std``'s default, as in the TRL implementation of GRPO). A group
    whose completions all earn the same reward gets advantage 0 everywhere: it says nothing
    about which completion is better. Returns a tensor of the shape of ``rewards``.
    """
    mean = rewards.mean(dim=-1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=-1, keepdim=True)  # (P, 1), divisor G - 1
    return (rewards - mean) / (std + eps)


def grpo_objective(logprobs: Tensor, old_logprobs: Tensor, ref_logprobs: Tensor, advantages: Tensor,
                   mask: Tensor, clip_eps: float = 0.2, kl_coef: float = 0.04) -> Tensor:
    """The GRPO loss to minimise: minus the clipped surrogate objective with its KL penalty.

    Args:
        logprobs: ``(N, T)`` log-probabilities under the policy being trained of the tokens
            of ``N`` completions (gradients flow through these only).
        old_logprobs: ``(N, T)`` the same under the policy that sampled the completions.
        ref_logprobs: ``(N, T)`` the same under the frozen reference model.
        advantages: ``(N,)`` one advantage per completion (:func:`group_relative_advantage`).
        mask: ``(N, T)`` bool, True at the completion's tokens; every row has at least one.
        clip_eps: ``eps`` of the clipped ratio.
        kl_coef: ``beta``, the weight of the KL penalty.

    Per token, with ``ratio = exp(logprobs - old_logprobs)`` and ``d = ref_logprobs - logprobs``::

        surrogate = min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)
        kl = exp(d) - d - 1          (k3: an unbiased estimate of KL(pi || pi_ref), never negative)
        J = mean over completions of [ mean over the completion's tokens of (surrogate - beta * kl) ]

    Each completion weighs the same whatever its length. Returns ``-J`` (0-dimensional):
    minimising it maximises the objective. The old and reference log-probabilities and the
    advantages are constants of the update, so they are detached here.
    """
    old_logprobs, ref_logprobs, advantages = old_logprobs.detach(), ref_logprobs.detach(), advantages.detach()
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    advantage = advantages[:, None]  # (N, 1)
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantage)
    log_ratio_ref = ref_logprobs - logprobs
    kl = torch.exp(log_ratio_ref) - log_ratio_ref - 1  # (N, T)
    mask = mask.to(logprobs.dtype)
    per_completion = ((surrogate - kl_coef * kl) * mask).sum(dim=-1) / mask.sum(dim=-1)  # (N,)
    return -per_completion.mean()


# ------------------------------------------------------------------ rollouts


def addition_reward(completions: Sequence[str], problems: Sequence[Problem]) -> Tensor:
    """The verifiable reward: 1.0 where the completion's extracted answer is ``a + b``, else 0.0. ``(N,)``."""
    return torch.tensor([float(extract_answer(text) == a + b) for text, (a, b) in zip(completions, problems)])


def token_logprobs(model: GPT, x: Tensor, y: Tensor, temperature: float = 1.0) -> Tensor:
    """``log p(y[n, t] | x[n, :t+1])`` under ``model`` sampled at ``temperature``: ``(N, T)``, 0 where ``y`` is
    ``IGNORE_INDEX``. The policy is the distribution the completions were sampled from, ``softmax(logits / T)``."""
    log_probs = F.log_softmax(model(x) / temperature, dim=-1)  # (N, T, V)
    kept = y != IGNORE_INDEX
    return log_probs.gather(-1, torch.where(kept, y, 0)[..., None]).squeeze(-1) * kept


def _cut_at_terminator(completion: str) -> str:
    """The completion up to and including its first terminator (all of it when it has none)."""
    head, terminator, _ = completion.partition(TERMINATOR)
    return head + terminator


@torch.no_grad()
def sample_rollout(model: GPT, reference: GPT, task: AdditionTask, problems: Sequence[Problem], group_size: int,
                   temperature: float = 1.0, generator: torch.Generator | None = None) -> tuple[Rollout, Tensor]:
    """Sample ``group_size`` completions per problem with ``model``; score them; return ``(rollout, rewards)``.

    Completions are sampled with the KV cache (:func:`~tfcourse.gpt_tasks.complete`) and cut
    after their first terminator: what follows it is never read, so it is not learned either.
    ``rewards`` is ``(len(problems), group_size)``; the rollout's rows are the completions,
    group after group.
    """
    examples = task.examples(problems)
    prompts = [prompt for prompt, _ in examples for _ in range(group_size)]
    n_digits = max(len(str(operand)) for problem in problems for operand in problem)
    texts = complete(model, task.tokenizer, prompts, longest_target(n_digits, task.chain_of_thought),
                     temperature=temperature, generator=generator)
    completions = [_cut_at_terminator(text) for text in texts]
    rewards = addition_reward(completions, [problem for problem in problems for _ in range(group_size)])
    rewards = rewards.view(len(problems), group_size)
    device = next(model.parameters()).device
    x, y = (tensor.to(device) for tensor in encode_examples(task.tokenizer, list(zip(prompts, completions))))
    advantages = group_relative_advantage(rewards).flatten().to(device)
    return (x, y, advantages, token_logprobs(reference, x, y, temperature)), rewards


def grpo_train(model: GPT, task: AdditionTask, steps: int = 200, prompts_per_step: int = 8, group_size: int = 16,
               lr: float = 1e-4, clip_eps: float = 0.2, kl_coef: float = 0.04, temperature: float = 1.0,
               seed: int = 0, device: str | None = None, progress: bool = False) -> tuple[TrainResult, list[float]]:
    """Improve ``model`` in place with ``steps`` GRPO updates on ``task``'s training digit counts.

    Each update samples ``group_size`` completions for each of ``prompts_per_step`` fresh
    problems (digit counts drawn from ``task.train_digits``), scores them with
    :func:`addition_reward` and takes one AdamW step (constant learning rate ``lr``) on
    :func:`grpo_objective`. The reference is a frozen copy of ``model`` as it was at the start.
    The completions are sampled by the policy being updated (one update per batch), so the old
    log-probabilities are the current ones detached: ``ratio`` is 1 in value and its gradient is
    the policy gradient. The clip binds only when several updates reuse a batch, PPO's setting.

    Returns ``train``'s result and the mean reward of each update's samples.
    """
    device = resolve_device(device)
    model.to(device)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    generator = torch.Generator(device).manual_seed(seed)
    mean_rewards: list[float] = []

    def next_batch(step: int) -> Rollout:
        rng = random.Random(batch_seed(seed, step))
        problems = [(random_operand(n, rng), random_operand(n, rng))
                    for n in rng.choices(task.train_digits, k=prompts_per_step)]
        rollout, rewards = sample_rollout(model, reference, task, problems, group_size, temperature, generator)
        mean_rewards.append(rewards.mean().item())
        return rollout

    def loss(policy: GPT, rollout: Rollout) -> Tensor:
        x, y, advantages, ref_logprobs = rollout
        logprobs = token_logprobs(policy, x, y, temperature)
        return grpo_objective(logprobs, logprobs.detach(), ref_logprobs, advantages, y != IGNORE_INDEX, clip_eps,
                              kl_coef)

    result = train(model, next_batch, loss, steps=steps, lr=lr, schedule="constant", weight_decay=0.0,
                   device=device, progress=progress)
    return result, mean_rewards
