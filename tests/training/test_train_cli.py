"""``tfcourse train`` / ``tfcourse generate``: run settings, outputs, resume, decoding, task targets."""

import json
import random

import pytest
import torch

from tfcourse.cli import main
from tfcourse.gpt_tasks import (
    IGNORE_INDEX,
    AdditionTask,
    LanguageModelTask,
    encode_examples,
    longest_target,
    random_operand,
    tokenizer_from_state,
    tokenizer_state,
)
from tfcourse.inference import Decoding, load_trained
from tfcourse.runs import TASKS, RunConfig, SymbolTask, run_training
from tfcourse.tokenize import CharTokenizer, train_bpe
from tfcourse.training import batch_seed

TINY = dict(d_model=16, n_heads=2, n_layers=1, batch_size=16, device="cpu")


def tiny_config(tmp_path, task="reverse", **settings) -> RunConfig:
    return RunConfig.for_task(task, out=str(tmp_path / task), **TINY | settings)


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "tokens_per_s"} for record in records]


# ------------------------------------------------------------------- settings


def test_config_takes_the_task_defaults_then_the_given_settings():
    config = RunConfig.for_task("addition-cot", steps=7)
    assert config.steps == 7
    assert config.lr == TASKS["addition-cot"].defaults["lr"]
    assert config.out_dir.as_posix() == "runs/addition-cot"


@pytest.mark.parametrize(("task", "settings", "message"), [
    ("sort", {}, "unknown task 'sort'; choose one of reverse"),
    ("reverse", {"learning_rate": 1.0}, "unknown settings \\['learning_rate'\\]"),
])
def test_config_rejects_unknown_tasks_and_settings(task, settings, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.for_task(task, **settings)


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0}, "batch_size=0: these settings must be at least 1"),
    ({"d_model": 30, "n_heads": 4}, "d_model=30 is not divisible by n_heads=4"),
    ({"dropout": 1.0}, "dropout=1.0 must be in \\[0, 1\\)"),
])
def test_config_rejects_impossible_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.for_task("reverse", **settings)


def test_impossible_settings_are_a_clear_command_line_error(capsys):
    assert main(["train", "reverse", "--batch-size", "0"]) == 2
    assert "error: batch_size=0: these settings must be at least 1" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_clear_error(capsys):
    assert main(["train", "reverse", "--device", "cuda", "--steps", "1"]) == 2
    assert "no CUDA device is available; use 'cpu'" in capsys.readouterr().err


def test_unknown_schedule_is_a_clear_command_line_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", "reverse", "--schedule", "linear"])
    assert "invalid choice: 'linear'" in capsys.readouterr().err


# ---------------------------------------------------------------- the outputs


def test_train_writes_checkpoint_summary_and_loss_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "copy", "--steps", "4", "--d-model", "16", "--n-heads", "2", "--n-layers", "1",
            "--batch-size", "8", "--device", "cpu", "--label-smoothing", "0.1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "copy: " in printed and "target exact_match >= 0.99 NOT met" in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["processes"] == 1
    assert summary["config"]["label_smoothing"] == 0.1
    assert summary["target_met"] is False and 0 <= summary["metrics"]["exact_match"] < 0.99
    assert [entry["step"] for entry in summary["evals"]] == [1, 2, 3, 4]  # 5 evaluations of 4 steps: every step
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4


def test_training_runs_on_each_device_with_mixed_precision(tmp_path, device):
    summary = run_training(tiny_config(tmp_path, steps=3, device=device.type, amp=True), progress=False)
    assert summary["device"].startswith(device.type) and summary["config"]["amp"] is True


class Interrupted(Exception):
    pass


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    settings = dict(steps=12, eval_every=4, dropout=0.1)  # dropout: the RNG state must be restored too
    whole = run_training(tiny_config(tmp_path / "whole", **settings), progress=False)

    batch = SymbolTask.batch

    def batch_crashing_at_step_10(self, batch_size, seed):
        if seed == batch_seed(0, 9):  # 0-based index 9: the 10th update
            raise Interrupted
        return batch(self, batch_size, seed)

    interrupted = tiny_config(tmp_path / "resumed", **settings)
    with monkeypatch.context() as patch:
        patch.setattr(SymbolTask, "batch", batch_crashing_at_step_10)
        with pytest.raises(Interrupted):
            run_training(interrupted, progress=False)
    assert torch.load(interrupted.out_dir / "checkpoint.pt", weights_only=True)["step"] == 8

    torch.manual_seed(99)  # resuming must not depend on the state of the process
    resumed = run_training(tiny_config(tmp_path / "resumed", resume=True, **settings), progress=False)

    assert resumed["evals"] == whole["evals"] and resumed["final_loss"] == whole["final_loss"]
    checkpoints = [torch.load(tmp_path / name / "reverse" / "checkpoint.pt", weights_only=True)
                   for name in ("whole", "resumed")]
    assert without_timing(checkpoints[0]["history"]) == without_timing(checkpoints[1]["history"])
    for name, tensor in checkpoints[0]["model"].items():
        assert torch.equal(tensor, checkpoints[1]["model"][name]), name


# ------------------------------------------------------------------ generation


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reverse")
    run_training(RunConfig.for_task("reverse", out=str(out), steps=5, **TINY), progress=False)
    return out


def generate(capsys, run, *options, prompt="3 1 4 1 5"):
    code = main(["generate", str(run), "--prompt", prompt, *options])
    captured = capsys.readouterr()
    return code, [line.split(" -> ")[1] for line in captured.out.splitlines()], captured.err


def test_every_strategy_decodes_symbols(reverse_run, capsys):
    outputs = {}
    for strategy in (["greedy"], ["beam", "--beam-width", "3"], ["sample", "--temperature", "0.7", "--top-k", "3",
                                                                  "--top-p", "0.9", "--samples", "4"]):
        code, lines, _ = generate(capsys, reverse_run, "--strategy", *strategy)
        assert code == 0
        outputs[strategy[0]] = lines
        for line in lines:
            assert all(0 <= int(symbol) < 10 for symbol in line.split()) and len(line.split()) <= 6
    assert len(outputs["greedy"]) == 1 and len(outputs["beam"]) == 1 and len(outputs["sample"]) == 4


def test_degenerate_settings_of_beam_and_sampling_are_greedy(reverse_run):
    trained = load_trained(reverse_run)
    prompt = "9 8 7 6 5 4 3 2"
    greedy = trained.complete(prompt)
    assert trained.complete(prompt, Decoding("beam", beam_width=1)) == greedy
    assert trained.complete(prompt, Decoding("sample", top_k=1, samples=3)) == greedy * 3


def test_sampling_is_reproducible_with_a_seed(reverse_run):
    trained = load_trained(reverse_run)
    draw = Decoding("sample", temperature=2.0, samples=5, seed=7)
    first = trained.complete("1 2 3 4", draw)
    assert trained.complete("1 2 3 4", draw) == first
    assert len(set(first)) > 1  # temperature 2 on a barely trained model: the samples differ


@pytest.mark.parametrize(("prompt", "message"), [
    ("1 2 x", "must be symbols 0..9 separated by spaces"),
    ("1 12", "symbol 12 is out of range"),
    ("1 2 3 4 5 6 7 8 9", "trained on 8 symbols"),
])
def test_generate_explains_bad_prompts(reverse_run, capsys, prompt, message):
    code, _, err = generate(capsys, reverse_run, prompt=prompt)
    assert code == 2 and message in err


def test_generate_explains_a_missing_checkpoint(tmp_path, capsys):
    code, _, err = generate(capsys, tmp_path / "nothing")
    assert code == 2 and "no checkpoint at" in err and "tfcourse train" in err


def test_generate_rejects_several_greedy_outputs():
    with pytest.raises(ValueError, match="only sampling gives different outputs"):
        Decoding("greedy", samples=2)


def test_addition_checkpoint_continues_prompts_and_rejects_unknown_characters(tmp_path, capsys):
    run_training(tiny_config(tmp_path, "addition-cot", steps=2, digits=2), progress=False)
    code, lines, _ = generate(capsys, tmp_path / "addition-cot", "--max-new-tokens", "12", prompt="12+34=")
    assert code == 0 and len(lines) == 1 and set(lines[0]) <= set("0123456789+=,.")
    code, _, err = generate(capsys, tmp_path / "addition-cot", prompt="12*34=")
    assert code == 2 and "cannot be encoded with this model's tokenizer" in err


# --------------------------------------------------------------- task pieces


def test_addition_examples_score_only_the_target():
    tokenizer = CharTokenizer("0123456789+=,.")
    x, y = encode_examples(tokenizer, [("1+2=", "3."), ("10+20=", "30.")])
    assert x.shape == y.shape == (2, 8)
    assert tokenizer.decode(x[0].tolist()) == "1+2=3..."  # padded with the terminator
    assert tokenizer.decode(x[1].tolist()) == "10+20=30"
    assert y[0].tolist()[:3] == [IGNORE_INDEX] * 3 and tokenizer.decode(y[0, 3:5].tolist()) == "3."
    assert y[0, 5:].eq(IGNORE_INDEX).all()
    assert tokenizer.decode(y[1, 5:].tolist()) == "30."


def test_operands_have_the_asked_number_of_digits():
    rng = random.Random(0)
    assert {len(str(random_operand(4, rng))) for _ in range(200)} == {4}
    assert {random_operand(1, rng) for _ in range(200)} == set(range(10))
    with pytest.raises(ValueError, match="at least 1 digit"):
        random_operand(0, rng)


def test_block_size_fits_the_longest_scratchpad():
    task = AdditionTask(chain_of_thought=True, train_digits=(1, 2), test_digits=(3,))
    assert longest_target(3, True) == len("9+9+0=18,9+9+1=19,9+9+1=19,=1998.")
    assert task.block_size == len("999+999=") + longest_target(3, True)


def test_addition_batches_depend_only_on_the_seed():
    task = AdditionTask(chain_of_thought=True)
    assert all(torch.equal(a, b) for a, b in zip(task.batch(8, 5), task.batch(8, 5)))
    assert not torch.equal(task.batch(8, 5)[0], task.batch(8, 6)[0])


@pytest.mark.parametrize("tokenizer", [CharTokenizer("hello world"), train_bpe("hello hello world " * 20, 262)])
def test_tokenizer_state_round_trips(tokenizer):
    state = json.loads(json.dumps(tokenizer_state(tokenizer)))
    rebuilt = tokenizer_from_state(state)
    assert rebuilt.encode("hello world") == tokenizer.encode("hello world")


def test_language_model_task_explains_bad_settings():
    with pytest.raises(ValueError, match="unknown tokenizer 'words'"):
        LanguageModelTask.from_corpus("words")
    with pytest.raises(ValueError, match="fewer than block_size"):
        LanguageModelTask.from_corpus(max_chars=1000, block_size=500)


# -------------------------------------------------------------- task targets


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_task_reaches_its_target_with_its_default_settings(tmp_path, task):
    summary = run_training(RunConfig.for_task(task, out=str(tmp_path), device="cpu"), progress=False)
    assert summary["target_met"], summary["metrics"]
