"""GRPO: the group-relative advantage, the clipped objective with its KL penalty, and the reward."""

import math

import pytest
import torch

from tfcourse.gpt_tasks import IGNORE_INDEX, AdditionTask, encode_examples, gpt_config
from tfcourse.model import GPT
from tfcourse.rl import addition_reward, group_relative_advantage, grpo_objective, token_logprobs


def _advantage_loops(rewards: torch.Tensor, eps: float) -> torch.Tensor:
    """The advantage one group and one reward at a time, with the sample std written out."""
    out = torch.empty_like(rewards)
    for p, group in enumerate(rewards.tolist()):
        mean = sum(group) / len(group)
        std = (sum((r - mean) ** 2 for r in group) / (len(group) - 1)) ** 0.5
        for g, r in enumerate(group):
            out[p, g] = (r - mean) / (std + eps)
    return out


def _objective_loops(logprobs, old, ref, advantages, mask, clip_eps, kl_coef) -> float:
    """Minus the GRPO objective, one completion and one token at a time."""
    total = 0.0
    for i in range(logprobs.size(0)):
        terms = []
        for t in range(logprobs.size(1)):
            if not mask[i, t]:
                continue
            ratio = math.exp(logprobs[i, t].item() - old[i, t].item())
            a = advantages[i].item()
            clipped = min(max(ratio, 1 - clip_eps), 1 + clip_eps)
            d = (ref[i, t] - logprobs[i, t]).item()
            kl = math.exp(d) - d - 1
            terms.append(min(ratio * a, clipped * a) - kl_coef * kl)
        total += sum(terms) / len(terms)
    return -total / logprobs.size(0)


def _inputs(n=5, steps=6, drift=0.5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logprobs = torch.log_softmax(torch.randn(n, steps, 4, generator=generator, dtype=torch.float64), -1)[..., 0]
    old = logprobs + drift * torch.randn(n, steps, generator=generator, dtype=torch.float64)
    ref = logprobs + drift * torch.randn(n, steps, generator=generator, dtype=torch.float64)
    advantages = torch.randn(n, generator=generator, dtype=torch.float64)
    mask = torch.rand(n, steps, generator=generator) < 0.6
    mask[:, 0] = True  # every completion has a token
    return logprobs.requires_grad_(), old, ref, advantages, mask


# --- group-relative advantage ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 8), (1, 2), (3, 5)])
def test_advantage_matches_a_loop_with_the_sample_std(shape):
    rewards = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).round()
    rewards[0, 0], rewards[0, 1] = 1.0, 0.0  # a group that disagrees
    torch.testing.assert_close(group_relative_advantage(rewards, eps=1e-3), _advantage_loops(rewards, 1e-3))


def test_advantage_equals_a_standardisation_by_torch_std():
    rewards = torch.randn(6, 7, dtype=torch.float64)
    expected = (rewards - rewards.mean(1, keepdim=True)) / (torch.std(rewards, 1, keepdim=True) + 1e-6)
    torch.testing.assert_close(group_relative_advantage(rewards), expected)


def test_equal_rewards_give_zero_advantage():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    advantages = group_relative_advantage(rewards)
    assert torch.equal(advantages[:2], torch.zeros(2, 3))
    assert advantages[2, 1] > 0 > advantages[2, 0]


def test_each_group_is_normalised_on_its_own():
    rewards = torch.tensor([[0.0, 1.0], [10.0, 30.0]])
    expected = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]) / 2**0.5  # sample std of two values: |a - b| / sqrt(2)
    torch.testing.assert_close(group_relative_advantage(rewards, eps=0.0), expected)


# --- objective ------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip_eps, kl_coef", [(0.2, 0.04), (0.1, 0.5), (0.3, 0.0)])
def test_objective_matches_a_loop_over_completions_and_tokens(clip_eps, kl_coef):
    inputs = _inputs()
    loss = grpo_objective(*inputs, clip_eps=clip_eps, kl_coef=kl_coef)
    assert loss.item() == pytest.approx(_objective_loops(*inputs, clip_eps, kl_coef), rel=1e-10)


def test_masked_positions_do_not_count():
    logprobs, old, ref, advantages, mask = _inputs()
    garbage = torch.where(mask, logprobs.detach(), torch.tensor(-50.0, dtype=torch.float64))
    torch.testing.assert_close(grpo_objective(garbage, old, ref, advantages, mask),
                               grpo_objective(logprobs, old, ref, advantages, mask).detach())


def test_kl_term_is_zero_when_the_policy_is_the_reference():
    logprobs, old, _, advantages, mask = _inputs()
    with_kl = grpo_objective(logprobs, old, logprobs.detach(), advantages, mask, kl_coef=10.0)
    without = grpo_objective(logprobs, old, logprobs.detach(), advantages, mask, kl_coef=0.0)
    torch.testing.assert_close(with_kl, without)


def test_kl_term_is_positive_when_the_policy_moved():
    logprobs, old, ref, advantages, mask = _inputs()
    assert grpo_objective(logprobs, old, ref, advantages, mask, kl_coef=1.0) > \
        grpo_objective(logprobs, old, ref, advantages, mask, kl_coef=0.0)


def test_at_the_old_policy_the_gradient_is_the_policy_gradient():
    """ratio = 1: d(-J)/d logprob[i, t] = -A_i / (N |o_i|) on the completion's tokens (no KL)."""
    logprobs, _, ref, advantages, mask = _inputs()
    grpo_objective(logprobs, logprobs.detach(), ref, advantages, mask, kl_coef=0.0).backward()
    expected = -advantages[:, None] * mask / mask.sum(1, keepdim=True) / mask.size(0)
    torch.testing.assert_close(logprobs.grad, expected.to(torch.float64))


def test_no_gradient_where_the_ratio_is_clipped_on_the_clipped_side():
    """Clipped side: A > 0 and ratio > 1 + eps, or A < 0 and ratio < 1 - eps; elsewhere -A ratio / (N |o_i|)."""
    logprobs, old, ref, advantages, mask = _inputs(n=40, drift=1.0)
    grpo_objective(logprobs, old, ref, advantages, mask, clip_eps=0.2, kl_coef=0.0).backward()
    ratio = torch.exp(logprobs.detach() - old)
    a = advantages[:, None]
    clipped = ((a > 0) & (ratio > 1.2)) | ((a < 0) & (ratio < 0.8))
    assert (clipped & mask).sum() > 5 and (~clipped & mask).sum() > 5
    assert torch.all(logprobs.grad[clipped] == 0)
    unclipped = ~clipped & mask
    expected = -a * ratio / mask.sum(1, keepdim=True) / mask.size(0)
    torch.testing.assert_close(logprobs.grad[unclipped], expected.expand_as(ratio)[unclipped])


def test_the_loss_falls_when_advantaged_tokens_become_likelier():
    logprobs, _, ref, advantages, mask = _inputs()
    loss = grpo_objective(logprobs, logprobs.detach(), ref, advantages, mask, kl_coef=0.0)
    moved = logprobs.detach() + 0.01 * advantages[:, None]
    assert grpo_objective(moved, logprobs.detach(), ref, advantages, mask, kl_coef=0.0) < loss


# --- reward and log-probabilities -----------------------------------------------------------------


def test_reward_is_exact_match_of_the_extracted_answer():
    completions = ["8+7+0=15,5+6+1=12,=125.", "8+7+0=15,5+6+1=12,=124.", "125", "125.3+1=4."]
    assert addition_reward(completions, [(58, 67)] * 4).tolist() == [1.0, 0.0, 0.0, 1.0]


def test_token_logprobs_are_log_softmax_gathered_at_the_completion():
    task = AdditionTask(True, (1, 2))
    torch.manual_seed(0)
    model = GPT(gpt_config(task, d_model=16, n_layers=1, n_heads=2)).double()
    x, y = encode_examples(task.tokenizer, [("5+7=", "5+7+0=12,=12."), ("12+3=", "2+3+0=5,=")])
    logprobs = token_logprobs(model, x, y, temperature=0.5)
    expected = torch.log_softmax(model(x) / 0.5, -1)
    for n, t in zip(*torch.nonzero(y != IGNORE_INDEX, as_tuple=True)):
        assert logprobs[n, t].item() == pytest.approx(expected[n, t, y[n, t]].item())
    assert torch.all(logprobs[y == IGNORE_INDEX] == 0)
