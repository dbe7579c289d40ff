"""Tests for tfcourse.training: the label-smoothed loss, the schedules and the loop."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfcourse.training import (
    TrainResult,
    label_smoothing_loss,
    load_checkpoint,
    noam_lr,
    save_checkpoint,
    train,
    warmup_cosine_lr,
)

VOCAB, SEQ_LEN, BATCH = 10, 4, 32


# ------------------------------------------------------------------------ loss


def reference_loss(logits, target, smoothing, ignore_index=-100):
    vocab_size = logits.size(-1)
    return F.cross_entropy(
        logits.reshape(-1, vocab_size),
        target.reshape(-1),
        label_smoothing=smoothing,
        ignore_index=ignore_index,
    )


def random_logits_and_target(shape, dtype, ignore_fraction=0.3, ignore_index=-100):
    logits = torch.randn(*shape, VOCAB, dtype=dtype, requires_grad=True)
    target = torch.randint(0, VOCAB, shape)
    target[torch.rand(shape) < ignore_fraction] = ignore_index
    return logits, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("shape", [(12,), (3, 5)], ids=["flat", "3d"])
def test_label_smoothing_matches_cross_entropy(shape, smoothing, dtype):
    logits, target = random_logits_and_target(shape, dtype)
    tol = dict(atol=1e-12, rtol=0) if dtype == torch.float64 else dict(atol=1e-6, rtol=1e-5)

    ours = label_smoothing_loss(logits, target, smoothing)
    expected = reference_loss(logits, target, smoothing)
    torch.testing.assert_close(ours, expected, **tol)

    (ours_grad,) = torch.autograd.grad(ours, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(ours_grad, expected_grad, **tol)


def test_label_smoothing_custom_ignore_index():
    logits, target = random_logits_and_target((4, 6), torch.float64, ignore_index=0)
    torch.testing.assert_close(
        label_smoothing_loss(logits, target, 0.1, ignore_index=0),
        reference_loss(logits, target, 0.1, ignore_index=0),
        atol=1e-12,
        rtol=0,
    )


def test_label_smoothing_zero_equals_cross_entropy_with_banned_tokens():
    """-inf logits (tokens that may never be chosen) leave the plain cross-entropy finite."""
    logits, target = random_logits_and_target((4, 6), torch.float64)
    banned = torch.zeros_like(logits, dtype=torch.bool)
    banned[..., 0] = True
    logits = logits.masked_fill(banned & (target.unsqueeze(-1) != 0), float("-inf")).requires_grad_()
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
    loss = label_smoothing_loss(logits, target, smoothing=0.0)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, expected, atol=1e-12, rtol=0)


def test_label_smoothing_all_ignored_is_zero_not_nan():
    logits, target = random_logits_and_target((2, 3), torch.float64, ignore_fraction=1.0)
    assert torch.isnan(reference_loss(logits, target, 0.1))

    loss = label_smoothing_loss(logits, target, 0.1)
    assert loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad, torch.zeros_like(grad))


# ------------------------------------------------------------------- schedules


def test_noam_peaks_at_warmup():
    d_model, warmup = 512, 100
    rates = [noam_lr(step, d_model, warmup) for step in range(1, 3 * warmup)]
    peak_step = 1 + max(range(len(rates)), key=rates.__getitem__)
    assert peak_step == warmup
    assert all(a < b for a, b in zip(rates[: warmup - 1], rates[1:warmup]))
    assert all(a > b for a, b in zip(rates[warmup - 1 :], rates[warmup:]))


@pytest.mark.parametrize("step", [1, 50, 100, 4000, 10_000])
def test_noam_formula(step):
    d_model, warmup = 512, 4000
    expected = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    assert noam_lr(step, d_model, warmup) == pytest.approx(expected, rel=1e-15)


def test_noam_step_zero_is_step_one():
    assert noam_lr(0, 512, 4000) == noam_lr(1, 512, 4000)


def test_warmup_cosine_shape():
    max_lr, min_lr, warmup, total = 1.0, 0.1, 10, 110
    assert warmup_cosine_lr(0, max_lr, warmup, total, min_lr) == 0.0
    assert warmup_cosine_lr(5, max_lr, warmup, total, min_lr) == pytest.approx(0.5)
    assert warmup_cosine_lr(warmup, max_lr, warmup, total, min_lr) == pytest.approx(max_lr)
    assert warmup_cosine_lr(60, max_lr, warmup, total, min_lr) == pytest.approx((max_lr + min_lr) / 2)
    assert warmup_cosine_lr(total, max_lr, warmup, total, min_lr) == pytest.approx(min_lr)
    assert warmup_cosine_lr(total + 50, max_lr, warmup, total, min_lr) == min_lr


# ---------------------------------------------------------------- training loop


def make_model(out_features: int = VOCAB) -> nn.Module:
    """Predicts the first token of a 4-token sequence; dropout makes the RNG matter."""
    return nn.Sequential(
        nn.Embedding(VOCAB, 16), nn.Dropout(0.2), nn.Flatten(), nn.Linear(16 * SEQ_LEN, out_features)
    )


def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(step)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=generator)
    return tokens, tokens[:, 0]


def compute_loss(model: nn.Module, batch) -> torch.Tensor:
    tokens, target = batch
    return F.cross_entropy(model(tokens), target)


def quick_train(model: nn.Module, **kwargs) -> TrainResult:
    options = dict(steps=20, lr=1e-2, device="cpu", progress=False) | kwargs
    return train(model, next_batch, compute_loss, **options)


def without_timing(history):
    return [{key: value for key, value in record.items() if key != "tokens_per_s"} for record in history]


def test_train_drives_loss_down():
    result = quick_train(make_model(), steps=150, lr=3e-2)
    first, last = result.history[0]["loss"], result.final_loss
    assert first > 2.0
    assert last < 0.3 * first
    assert result.steps == 150 and len(result.history) == 150
    assert [record["step"] for record in result.history] == list(range(1, 151))
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(result.history[0])


@pytest.mark.parametrize("schedule", ["cosine", "noam", "constant"])
def test_train_follows_schedule(schedule):
    result = quick_train(make_model(), schedule=schedule, lr=1e-2, warmup=5)
    rates = [record["lr"] for record in result.history]
    assert max(rates) == pytest.approx(1e-2)
    if schedule != "constant":
        assert rates.index(max(rates)) == 4  # the 5th step ends the warm-up


def test_train_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        quick_train(make_model(), schedule="linear")


def test_train_clips_gradients():
    model = make_model()
    result = quick_train(model, steps=1, lr=1.0, schedule="constant", grad_clip=1e-3, weight_decay=0.0)
    assert result.history[0]["grad_norm"] > 1e-3  # recorded before clipping


def test_train_evaluates_in_eval_mode_without_grad():
    calls = []

    def eval_fn(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"val_loss": compute_loss(model, next_batch(-1)).item()}

    model = make_model()
    result = quick_train(model, steps=12, eval_fn=eval_fn, eval_every=5)
    assert [entry["step"] for entry in result.evals] == [5, 10, 12]
    assert calls == [(False, False)] * 3
    assert model.training
    assert "val_loss" in result.history[4] and "val_loss" not in result.history[5]


def test_train_stops_after_the_first_evaluation_that_stop_when_accepts(tmp_path):
    evaluated = iter(range(100))
    result = quick_train(make_model(), steps=30, eval_fn=lambda model: {"n": next(evaluated)}, eval_every=5,
                         stop_when=lambda metrics: metrics["n"] >= 2, checkpoint=tmp_path / "ckpt.pt")
    assert result.steps == len(result.history) == 15
    assert [entry["step"] for entry in result.evals] == [5, 10, 15]
    assert load_checkpoint(tmp_path / "ckpt.pt", make_model())["step"] == 15
    assert quick_train(make_model(), steps=6, eval_fn=lambda model: {}, eval_every=2).steps == 6


def test_train_calls_log_with_each_record():
    logged = []
    result = quick_train(make_model(), steps=3, log=logged.append)
    assert logged == result.history


def test_train_amp_on_cpu_runs_in_bfloat16():
    dtypes = []

    def loss_recording_dtype(model, batch):
        tokens, target = batch
        logits = model(tokens)
        dtypes.append(logits.dtype)
        return F.cross_entropy(logits.float(), target)

    model = make_model()
    result = train(model, next_batch, loss_recording_dtype, steps=5, device="cpu", amp=True, progress=False)
    assert dtypes == [torch.bfloat16] * 5
    assert torch.isfinite(torch.tensor(result.final_loss))
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())


class Interrupted(Exception):
    pass


def test_resume_is_bit_identical(tmp_path):
    torch.manual_seed(1)
    uninterrupted_model = make_model()
    uninterrupted = quick_train(uninterrupted_model, checkpoint=tmp_path / "a.pt", checkpoint_every=5)

    def next_batch_crashing_at_step_12(step):
        if step == 12:
            raise Interrupted
        return next_batch(step)

    torch.manual_seed(1)
    with pytest.raises(Interrupted):
        train(
            make_model(),
            next_batch_crashing_at_step_12,
            compute_loss,
            steps=20,
            lr=1e-2,
            device="cpu",
            progress=False,
            checkpoint=tmp_path / "b.pt",
            checkpoint_every=5,
        )
    assert load_checkpoint(tmp_path / "b.pt", make_model())["step"] == 10

    torch.manual_seed(123)  # a different RNG state: resuming must restore the saved one
    resumed_model = make_model()
    resumed = quick_train(resumed_model, checkpoint=tmp_path / "b.pt", checkpoint_every=5, resume=True)

    assert resumed.steps == 20
    assert without_timing(resumed.history) == without_timing(uninterrupted.history)
    for expected, actual in zip(uninterrupted_model.parameters(), resumed_model.parameters()):
        assert torch.equal(expected, actual)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    torch.manual_seed(1)
    fresh = quick_train(make_model(), steps=3)
    torch.manual_seed(1)
    resumed = quick_train(make_model(), steps=3, checkpoint=tmp_path / "new.pt", resume=True)
    assert without_timing(resumed.history) == without_timing(fresh.history)
    assert (tmp_path / "new.pt").exists()


def checkpoint_args(model):
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return model, optimizer, scaler


def test_checkpoint_is_written_atomically(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, *checkpoint_args(make_model()), step=3, history=[], evals=[])
    assert [entry.name for entry in path.parent.iterdir()] == ["checkpoint.pt"]

    saved = path.read_bytes()
    with pytest.MonkeyPatch.context() as patch:

        def failing_save(obj, file):
            file.write(b"partial")
            raise OSError("disk full")

        patch.setattr(torch, "save", failing_save)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(path, *checkpoint_args(make_model()), step=4, history=[], evals=[])
    assert [entry.name for entry in path.parent.iterdir()] == ["checkpoint.pt"]
    assert path.read_bytes() == saved


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "checkpoint.pt"
    source = make_model()
    save_checkpoint(path, *checkpoint_args(source), step=7, history=[{"step": 7, "loss": 1.0}], evals=[])
    target = make_model()
    checkpoint = load_checkpoint(path, target)
    assert checkpoint["step"] == 7 and checkpoint["history"] == [{"step": 7, "loss": 1.0}]
    for expected, actual in zip(source.parameters(), target.parameters()):
        assert torch.equal(expected, actual)


def test_checkpoint_from_another_model_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    quick_train(make_model(), steps=2, checkpoint=path)
    with pytest.raises(ValueError, match="different model"):
        quick_train(make_model(out_features=VOCAB + 1), steps=4, checkpoint=path, resume=True)


def test_train_on_device_with_amp(device):
    result = quick_train(make_model(), steps=30, device=device, amp=True)
    assert result.final_loss < result.history[0]["loss"]
