"""The written-out AdamW and gradient clipping against ``torch.optim.AdamW`` and ``clip_grad_norm_``."""

import copy
import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from tfcourse.optim import AdamW, clip_grad_norm

F64 = dict(atol=1e-12, rtol=1e-10)


def small_model() -> nn.Module:
    """An MLP in float64 with an extra parameter that never receives a gradient."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    model.unused = nn.Parameter(torch.randn(4, dtype=torch.float64))
    return model


def param_groups(model: nn.Module) -> list[dict]:
    """Decay on the matrices only, and a group of its own (lr, betas, eps) for the last bias."""
    first, _, last = model[0], model[1], model[2]
    return [
        {"params": [first.weight, last.weight], "weight_decay": 0.1},
        {"params": [first.bias, model.unused], "weight_decay": 0.0},
        {"params": [last.bias], "lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.0},
    ]


def run(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, first_step: int = 0) -> None:
    """``steps`` updates on a regression problem, with a learning-rate schedule."""
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + (first_step + step) / 50))
    for step in range(first_step, first_step + steps):
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(32, 6, generator=generator, dtype=torch.float64)
        y = torch.randn(32, 3, generator=generator, dtype=torch.float64)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        schedule.step()


def assert_same_parameters(model, reference, **tolerance):
    for (name, ours), (_, theirs) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert_close(ours, theirs, **tolerance, msg=lambda message, name=name: f"{name}: {message}")


def test_adamw_follows_torch_for_hundreds_of_steps_with_param_groups():
    model, reference = small_model(), small_model()
    unused_before = model.unused.detach().clone()
    run(model, AdamW(param_groups(model), lr=1e-2), steps=300)
    run(reference, torch.optim.AdamW(param_groups(reference), lr=1e-2), steps=300)
    assert_same_parameters(model, reference, **F64)
    assert torch.equal(model.unused, unused_before)
    assert not torch.allclose(model[0].weight, small_model()[0].weight)


def test_adamw_has_torchs_defaults():
    ours, theirs = inspect.signature(AdamW).parameters, inspect.signature(torch.optim.AdamW).parameters
    for name in ("lr", "betas", "eps", "weight_decay"):
        assert ours[name].default == theirs[name].default, name
    model, reference = small_model(), small_model()
    run(model, AdamW(model.parameters()), steps=20)
    run(reference, torch.optim.AdamW(reference.parameters()), steps=20)
    assert_same_parameters(model, reference, **F64)


def test_adamw_state_dict_resumes_the_run_exactly():
    straight, resumed = small_model(), small_model()
    run(straight, AdamW(param_groups(straight), lr=1e-2), steps=60)

    first_half = AdamW(param_groups(resumed), lr=1e-2)
    run(resumed, first_half, steps=30)
    saved = copy.deepcopy(first_half.state_dict())
    assert {key for state in saved["state"].values() for key in state} == {"step", "exp_avg", "exp_avg_sq"}
    second_half = AdamW(param_groups(resumed), lr=1e-2)
    second_half.load_state_dict(saved)
    assert second_half.param_groups[0]["lr"] == pytest.approx(1e-2 / (1 + 30 / 50))
    run(resumed, second_half, steps=30, first_step=30)
    assert_same_parameters(resumed, straight, atol=0, rtol=0)


def test_adamw_step_calls_the_closure_and_returns_its_loss():
    weight = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = AdamW([weight], lr=0.1, eps=0.0, weight_decay=0.0)

    def closure():
        optimizer.zero_grad()
        loss = (weight**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 5.0
    # First step: m_hat = g and v_hat = g**2, so each weight moves by lr against the sign of g.
    assert_close(weight.detach(), torch.tensor([0.9, -1.9], dtype=torch.float64), **F64)


@pytest.mark.parametrize(
    "options", [dict(lr=-1.0), dict(eps=-1e-8), dict(betas=(1.0, 0.999)), dict(betas=(0.9, -0.1)), dict(weight_decay=-0.1)]
)
def test_adamw_rejects_invalid_options(options):
    with pytest.raises(ValueError):
        AdamW([nn.Parameter(torch.zeros(2))], **options)


@settings(max_examples=60, deadline=None)
@given(
    grads=st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=1, max_size=4),
    lr=st.floats(1e-5, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0.0, 1.0),
)
def test_adamw_matches_torch_for_any_options_and_gradients(grads, lr, beta1, beta2, eps, weight_decay):
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    start = torch.linspace(-1, 1, 3, dtype=torch.float64)
    ours, theirs = nn.Parameter(start.clone()), nn.Parameter(start.clone())
    optimizers = AdamW([ours], **options), torch.optim.AdamW([theirs], **options)
    for grad in grads:
        for param, optimizer in zip((ours, theirs), optimizers):
            param.grad = torch.tensor(grad, dtype=torch.float64)
            optimizer.step()
    assert_close(ours, theirs, **F64)


# --- gradient clipping --------------------------------------------------------------------


def with_gradients(grads: list[torch.Tensor | None]) -> list[nn.Parameter]:
    """Parameters holding copies of ``grads`` (``None``: a parameter without a gradient)."""
    params = []
    for grad in grads:
        param = nn.Parameter(torch.zeros(3, dtype=torch.float64) if grad is None else torch.zeros_like(grad))
        param.grad = None if grad is None else grad.clone()
        params.append(param)
    return params


def clip_both(grads, max_norm):
    """``(ours, torch's)``: each ``(norm returned, gradients after)``."""
    results = []
    for clip in (clip_grad_norm, nn.utils.clip_grad_norm_):
        params = with_gradients(grads)
        norm = clip(params, max_norm)
        results.append((norm, [param.grad for param in params]))
    return results


GRADS = [torch.tensor([3.0, 0.0], dtype=torch.float64), None, torch.tensor([[4.0]], dtype=torch.float64)]


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 4.999], ids=["clips hard", "clips", "clips barely"])
def test_clip_grad_norm_scales_like_torch_when_the_norm_is_too_large(max_norm):
    (norm, grads), (torch_norm, torch_grads) = clip_both(GRADS, max_norm)
    assert norm.item() == 5.0  # sqrt(3**2 + 4**2): one norm over all gradients
    assert_close(norm, torch_norm, **F64)
    assert grads[1] is None
    for ours, theirs, before in zip(grads, torch_grads, GRADS):
        if before is not None:
            assert_close(ours, theirs, **F64)
            assert_close(ours, before * max_norm / (5.0 + 1e-6), **F64)


@pytest.mark.parametrize("max_norm", [5.0, 7.0, float("inf")])
def test_clip_grad_norm_leaves_small_gradients_alone(max_norm):
    params = with_gradients(GRADS)
    assert clip_grad_norm(params, max_norm).item() == 5.0
    assert torch.equal(params[0].grad, GRADS[0]) and torch.equal(params[2].grad, GRADS[2])
    assert params[1].grad is None


def test_clip_grad_norm_without_gradients_returns_zero_like_torch():
    params = with_gradients([None, None])
    assert clip_grad_norm(params, 1.0).item() == nn.utils.clip_grad_norm_(params, 1.0).item() == 0.0


def test_clip_grad_norm_takes_a_generator_and_a_single_tensor():
    model = small_model()
    loss = nn.functional.mse_loss(model(torch.ones(2, 6, dtype=torch.float64)), torch.zeros(2, 3, dtype=torch.float64))
    loss.backward()

    def all_grads():
        return torch.cat([param.grad.flatten() for param in model.parameters() if param.grad is not None])

    norm = all_grads().norm()
    assert_close(clip_grad_norm(model.parameters(), norm / 2), norm, **F64)
    assert_close(all_grads().norm(), norm / 2 * norm / (norm + 1e-6), **F64)
    weight_norm = model[0].weight.grad.norm()
    assert_close(clip_grad_norm(model[0].weight, weight_norm / 3), weight_norm, **F64)
    assert_close(model[0].weight.grad.norm(), weight_norm / 3 * weight_norm / (weight_norm + 1e-6), **F64)


gradient_lists = st.lists(
    st.none() | st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=5).map(
        lambda values: torch.tensor(values, dtype=torch.float64)
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(grads=gradient_lists, max_norm=st.floats(1e-3, 1e4))
def test_clip_grad_norm_agrees_with_torch_on_any_gradients(grads, max_norm):
    (norm, clipped), (torch_norm, torch_clipped) = clip_both(grads, max_norm)
    assert_close(norm, torch_norm, **F64)
    # Within eps of the threshold torch scales by max_norm / (norm + eps), at most about
    # eps / max_norm below 1, where clip_grad_norm (norm not above max_norm) leaves the
    # gradients alone. The factor 2 covers the rounding of that bound.
    tolerance = F64 if abs(norm - max_norm) > 1e-6 else dict(atol=1e-12, rtol=2e-6 / max_norm)
    for ours, theirs, before in zip(clipped, torch_clipped, grads):
        assert (ours is None) == (before is None)
        if before is not None:
            assert_close(ours, theirs, **tolerance)
    new_norm = torch.tensor([grad.norm() for grad in clipped if grad is not None]).norm()
    assert new_norm <= max(max_norm, norm) + 1e-9
