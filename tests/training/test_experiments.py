"""Lesson 7's experiments: result structure, plots, the command, and (slow) the claims they show."""

import json

import pytest
from matplotlib.figure import Figure

from tfcourse import experiments
from tfcourse.cli import main
from tfcourse.model import GPT, GPTConfig

TINY_GPT = dict(d_model=16, n_layers=1, n_heads=2)
TINY = {
    "cot": dict(train_digits=(1, 2), test_digits=(1, 2, 3), steps=3, batch_size=8, n_eval=5, **TINY_GPT),
    "self-consistency": dict(digits=2, samples=(1, 3), steps=3, batch_size=8, n_eval=5, **TINY_GPT),
    "scaling": dict(widths=(8, 16), n_layers=1, n_heads=2, steps=3, batch_size=4, block_size=16,
                    corpus_chars=5000),
}


@pytest.fixture(scope="module")
def tiny_results() -> dict[str, dict]:
    return {name: experiments.RUNNERS[name](device="cpu", **settings) for name, settings in TINY.items()}


def test_chain_of_thought_reports_accuracy_per_digit_count(tiny_results):
    result = tiny_results["cot"]
    assert result["digits"] == [1, 2, 3] and result["train_digits"] == [1, 2]
    assert len(result["direct"]) == len(result["scratchpad"]) == 3
    assert all(0 <= accuracy <= 1 for accuracy in result["direct"] + result["scratchpad"])


def test_chain_of_thought_gives_both_formats_the_same_training_tokens(tiny_results):
    tokens = tiny_results["cot"]["train_tokens"]
    batches = tiny_results["cot"]["batch_size"]
    assert batches["direct"] > batches["scratchpad"] == 8  # direct examples are shorter
    assert tokens["direct"] == pytest.approx(tokens["scratchpad"], rel=0.1)


def test_self_consistency_reports_single_and_majority(tiny_results):
    result = tiny_results["self-consistency"]
    assert set(result["majority"]) == {1, 3}
    assert all(0 <= value <= 1 for value in [result["single"], result["greedy"], *result["majority"].values()])


def test_scaling_sweep_fits_a_power_law_to_its_points(tiny_results):
    result = tiny_results["scaling"]
    assert len(result["params"]) == len(result["loss"]) == 2
    assert result["params"][0] < result["params"][1]
    for params, loss in zip(result["params"], result["loss"]):
        assert result["a"] * params ** -result["alpha"] == pytest.approx(loss, rel=1e-6)  # 2 points: exact fit


def test_scaling_sweep_needs_two_sizes():
    with pytest.raises(ValueError, match="at least 2 model sizes"):
        experiments.scaling_sweep(widths=(16,))


def test_non_embedding_parameters_leave_out_both_embeddings():
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layers=1, n_heads=1, d_model=8))
    blocks = sum(p.numel() for p in model.blocks.parameters())
    final_norm = sum(p.numel() for p in model.norm.parameters())
    assert experiments.non_embedding_parameters(model) == blocks + final_norm


@pytest.mark.parametrize("name", list(TINY))
def test_results_are_json_and_plot(tiny_results, name):
    result = tiny_results[name]
    json.dumps(result)
    assert isinstance(experiments.PLOTS[name](result), Figure)
    assert experiments.describe(name, result)


def test_experiment_command_writes_json_and_png(tmp_path, monkeypatch, capsys):
    runner = experiments.RUNNERS["scaling"]
    monkeypatch.setitem(experiments.RUNNERS, "scaling", lambda **kw: runner(**kw | TINY["scaling"]))
    assert main(["experiment", "scaling", "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
    assert "loss = " in capsys.readouterr().out
    assert json.loads((tmp_path / "scaling.json").read_text())["widths"] == [8, 16]
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_full_settings_are_accepted_by_their_experiments():
    for name, settings in experiments.FULL.items():
        parameters = experiments.RUNNERS[name].__code__.co_varnames
        assert set(settings) <= set(parameters), name


# ---------------------------------------------------------- the lessons' claims


@pytest.mark.slow
def test_scratchpad_beats_direct_answers_at_equal_compute():
    result = experiments.chain_of_thought(device="cpu")
    longest = result["digits"].index(max(result["train_digits"]))
    assert result["scratchpad"][longest] >= result["direct"][longest] + 0.3, result


@pytest.mark.slow
def test_majority_vote_beats_a_single_sample():
    result = experiments.self_consistency(device="cpu")
    assert result["majority"][max(result["majority"])] >= result["single"] + 0.1, result


@pytest.mark.slow
def test_validation_loss_falls_with_model_size():
    result = experiments.scaling_sweep(device="cpu")
    assert result["loss"] == sorted(result["loss"], reverse=True), result
    assert result["alpha"] > 0
