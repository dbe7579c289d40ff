"""Lesson 7's GRPO experiment: a tiny run end to end, its plot and the command. How much GRPO gains over the
imitation-trained model, and how long it takes, is measured by ``python -m benchmarks.bench_rl`` over several seeds."""

import json

import pytest
import torch
from matplotlib.figure import Figure

from tfcourse import experiments
from tfcourse.cli import main
from tfcourse.gpt_tasks import AdditionTask, gpt_config
from tfcourse.model import GPT
from tfcourse.rl import grpo_train, sample_rollout

TINY = dict(train_digits=(1, 2), rl_digits=(2,), test_digits=(1, 2, 3), imitation_steps=3, batch_size=8,
            d_model=16, n_layers=1, n_heads=2, grpo_steps=2, prompts_per_step=2, group_size=3, n_eval=4)


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    return experiments.reinforcement(device="cpu", **TINY)


def test_reports_accuracy_before_and_after_per_digit_count(tiny_result):
    assert tiny_result["digits"] == [1, 2, 3] and tiny_result["rl_digits"] == [2]
    assert len(tiny_result["before"]) == len(tiny_result["after"]) == 3
    assert all(0 <= accuracy <= 1 for accuracy in tiny_result["before"] + tiny_result["after"])
    assert len(tiny_result["rewards"]) == 2 and all(0 <= reward <= 1 for reward in tiny_result["rewards"])
    assert tiny_result["seconds"] >= tiny_result["imitation_seconds"] > 0


def test_result_is_json_plots_and_is_described(tiny_result):
    json.dumps(tiny_result)
    assert isinstance(experiments.PLOTS["rl"](tiny_result), Figure)
    assert "before" in experiments.describe("rl", tiny_result)


def test_rollout_rows_are_groups_of_completions_with_their_rewards():
    task = AdditionTask(True, (2,))
    model = GPT(gpt_config(task, d_model=16, n_layers=1, n_heads=2))
    (x, y, advantages, ref_logprobs), rewards = sample_rollout(model, model, task, [(12, 34), (56, 7)], 4)
    assert rewards.shape == (2, 4) and x.shape == y.shape == ref_logprobs.shape and x.size(0) == 8
    assert advantages.shape == (8,)
    assert ((y != -100).sum(1) >= 1).all()  # every completion has a token to learn


def test_grpo_leaves_the_model_unchanged_when_every_group_agrees_and_kl_is_off():
    """An untrained model never answers right: every advantage is 0, so without the KL term nothing moves."""
    task = AdditionTask(True, (2,))
    model = GPT(gpt_config(task, d_model=16, n_layers=1, n_heads=2))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _, rewards = grpo_train(model, task, steps=2, prompts_per_step=2, group_size=3, kl_coef=0.0, device="cpu")
    assert rewards == [0.0, 0.0]
    assert all(torch.equal(before[name], p.detach()) for name, p in model.named_parameters())


def test_experiment_command_writes_json_and_png(tmp_path, monkeypatch, capsys):
    runner = experiments.RUNNERS["rl"]
    monkeypatch.setitem(experiments.RUNNERS, "rl", lambda **kw: runner(**kw | TINY))
    assert main(["experiment", "rl", "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
    assert "after" in capsys.readouterr().out
    assert json.loads((tmp_path / "rl.json").read_text())["rl_digits"] == [2]
    assert (tmp_path / "rl.png").read_bytes()[:4] == b"\x89PNG"


def test_full_settings_are_accepted():
    assert set(experiments.FULL["rl"]) <= set(experiments.reinforcement.__code__.co_varnames)
