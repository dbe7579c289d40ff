"""Training smoke test: the encoder-decoder really learns sequence reversal."""

import pytest
import torch

from tfcourse.data import BOS_ID, EOS_ID
from tfcourse.tasks import Seq2SeqTask, exact_match, teacher_forcing_loss, train_seq2seq


def test_untrained_model_does_not_reverse():
    task = Seq2SeqTask("reverse")
    model, _ = train_seq2seq(task, steps=1, progress=False, device="cpu")
    assert exact_match(model, task, n=200) < 0.05


def test_teacher_forcing_shifts_the_target():
    task = Seq2SeqTask("copy", seq_len=4, n_symbols=5)
    src, tgt = task.batch(3, torch.Generator().manual_seed(0))
    assert tgt[:, 0].eq(BOS_ID).all() and tgt[:, -1].eq(EOS_ID).all()
    model, _ = train_seq2seq(task, steps=1, progress=False, device="cpu")
    assert teacher_forcing_loss(model, (src, tgt)).ndim == 0


@pytest.mark.slow
def test_encoder_decoder_learns_reversal_on_cpu():
    task = Seq2SeqTask("reverse", seq_len=8, n_symbols=10)
    model, result = train_seq2seq(task, steps=500, progress=False, device="cpu")
    assert result.evals[-1]["exact_match"] >= 0.95
    assert exact_match(model, task, n=1000, seed=2024) >= 0.95


def test_a_model_that_emits_eos_at_once_scores_zero():
    """Greedy decoding stops when every row has emitted EOS; exact match still compares whole targets."""
    task = Seq2SeqTask("reverse", seq_len=6, n_symbols=5)
    model, _ = train_seq2seq(task, steps=1, progress=False, device="cpu")
    with torch.no_grad():
        model.lm_head.bias.fill_(-1e4)
        model.lm_head.bias[EOS_ID] = 1e4
    assert exact_match(model, task, n=50) == 0.0
