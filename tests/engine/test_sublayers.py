"""Where a wrong module first goes wrong: forward hooks on both sides, and the sentence that names the sub-layer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autograder.checker import run_check
from autograder.harness.activations import MODULE_BYTES, recording, steps_from_plain
from autograder.harness.calls import module_output
from tests.support.notebooks import solution_namespace, solution_notebook

MHA = solution_namespace("03-multihead")
FFN_NORM = solution_namespace("04-ffn-norm")
LAYERS = solution_namespace("05-encoder-decoder")


# --- wrong modules, as learners write them ------------------------------------------------------------

class SkipFromNormalised(FFN_NORM.ResidualConnection):
    def forward(self, x, sublayer):
        if self.norm_first:
            h = self.norm(x)
            return h + self.dropout(sublayer(h))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderWithoutFinalNorm(LAYERS.Encoder):
    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x


class EncoderFeedingX(LAYERS.Encoder):
    def forward(self, x, mask=None):
        for layer in self.layers:
            out = layer(x, mask)
        return self.norm(out)


class CrossAttentionOnX(LAYERS.DecoderLayer):
    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, x, x, memory_mask)[0])
        return self.ff_residual(x, self.ff)


class FeedForwardWithoutActivation(FFN_NORM.FeedForward):
    def forward(self, x):
        return self.w2(self.dropout(self.w1(x)))


class NormsSwapped(LAYERS.EncoderLayer):
    """Each sub-layer normalised by the other's LayerNorm."""

    def forward(self, x, mask=None):
        norm1, norm2 = self.ff_residual.norm, self.self_attn_residual.norm
        if self.self_attn_residual.norm_first:
            h = norm1(x)
            x = x + self.self_attn(h, h, h, mask)[0]
            return x + self.ff(norm2(x))
        x = norm1(x + self.self_attn(x, x, x, mask)[0])
        return norm2(x + self.ff(x))


class AttentionWithoutOutputProjection(MHA.MultiHeadAttention):
    def forward(self, query, key, value, mask=None):
        d_head = query.shape[-1] // self.n_heads

        def heads(t):
            return t.view(t.shape[0], t.shape[1], self.n_heads, d_head).transpose(1, 2)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        return (self.dropout(weights) @ v).transpose(1, 2).flatten(2), weights


WRONG = [
    ("ResidualConnection", SkipFromNormalised,
     ["the output of `dropout` plus the output of `norm`",
      "where it should be the input `x` plus the output of `dropout`"]),
    ("Encoder", EncoderWithoutFinalNorm, ["`norm` (LayerNorm) is never called"]),
    ("Encoder", EncoderFeedingX, ["The input of `layers.1` is not the output of `layers.0` (it is the input `x`)",
                                  "each layer must get the previous layer's output"]),
    ("DecoderLayer", CrossAttentionOnX, ["the input of `cross_attn` is not", "its `key`",
                                         "where it should be the input `memory`"]),
    ("FeedForward", FeedForwardWithoutActivation, ["The output of `w1` is right; the input of `dropout` is not",
                                                   "is the activation applied?"]),
    ("EncoderLayer", NormsSwapped, ["`ff_residual.norm` is called where the reference calls `self_attn_residual.norm`",
                                    "are `ff_residual.norm` and `self_attn_residual.norm` swapped"]),
    ("MultiHeadAttention", AttentionWithoutOutputProjection,
     ["`out_proj` (Linear) is never called: your output is what the reference passes to it"]),
]


@pytest.mark.parametrize("name, learner, phrases", WRONG, ids=[cls.__name__ for _, cls, _ in WRONG])
def test_a_wrong_module_is_told_which_sub_layer_goes_wrong(name, learner, phrases):
    result = run_check(learner, name, devices=[torch.device("cpu")])
    assert not result.passed
    where = next(line for line in result.message.splitlines() if line.startswith("  Where it goes wrong: "))
    for phrase in phrases:
        assert phrase in where, where


@pytest.mark.parametrize("name", ["EncoderLayer", "Decoder", "MultiHeadAttention", "ResidualConnection"])
def test_a_right_module_gets_no_sentence(name):
    namespace = MHA if name == "MultiHeadAttention" else FFN_NORM if name == "ResidualConnection" else LAYERS
    result = run_check(getattr(namespace, name), name, devices=[torch.device("cpu")])
    assert result.passed, result.message
    assert not any(o.sublayer for o in result.outcomes)


def test_training_mode_cases_are_not_recorded():
    result = run_check(FeedForwardWithoutActivation, "FeedForward", devices=[torch.device("cpu")])
    assert all(not o.sublayer for o in result.outcomes if o.training)
    assert any(o.sublayer for o in result.outcomes if not o.training)


# --- the recording ---------------------------------------------------------------------------------------

def _layer() -> nn.Module:
    torch.manual_seed(0)
    return LAYERS.EncoderLayer(8, 2, 16, 0.0, True).double().eval()


def test_recording_changes_neither_the_output_nor_the_gradients_and_removes_its_hooks():
    layer, x = _layer(), torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    plain = layer(x)
    plain.sum().backward()
    expected_gradient, x.grad = x.grad.clone(), None
    with recording(layer) as steps:
        recorded = layer(x)
    recorded.sum().backward()
    assert torch.equal(recorded, plain) and torch.equal(x.grad, expected_gradient)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in layer.modules())
    assert steps_from_plain(steps) is not None
    names = [name for name, kind, _ in steps if kind == "input"]
    assert names[:3] == ["self_attn_residual", "self_attn_residual.norm", "self_attn"]
    assert all(not t.requires_grad for _, _, tensors in steps for t in tensors.values())


def test_only_the_first_call_of_a_sub_module_is_kept():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(self.linear(x))

    module, x = Twice(), torch.randn(3, 2)
    with recording(module) as steps:
        module(x)
    assert [(name, kind) for name, kind, _ in steps] == [("linear", "input"), ("linear", "output")]
    assert torch.equal(steps[0][2]["0"], x)


def test_a_sub_module_over_the_size_cap_keeps_no_tensors():
    module = nn.Sequential(nn.Identity(), nn.Linear(4, 4))
    with recording(module) as steps:
        module(torch.zeros(MODULE_BYTES // 16 + 1, 4))
    assert [tensors for _, _, tensors in steps] == [None, None, None, None]


def test_hostile_modules_record_what_they_let_be_recorded():
    class RefusesHooks(nn.Linear):
        def register_forward_pre_hook(self, *args, **kwargs):
            raise RuntimeError("no hooks here")

    class OddOutput(nn.Module):
        def forward(self, x):
            return {"not": "a tensor"}, x

    class Host(nn.Module):
        def __init__(self):
            super().__init__()
            self.odd, self.refuses = OddOutput(), RefusesHooks(2, 2)

        def forward(self, x):
            return self.refuses(self.odd(x)[1])

    module, x = Host(), torch.randn(3, 2)
    with recording(module) as steps:
        output = module(x)
    assert torch.equal(output, module(x))
    assert [(name, kind) for name, kind, _ in steps] == [("odd", "input"), ("odd", "output")]
    assert list(steps[1][2]) == ["1"]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


@pytest.mark.parametrize("plain", [
    {"odd": 1}, [["x", "input"]], [["x", "middle", None]], [["", "input", None]], [["x", "input", {1: torch.ones(1)}]],
    [["x", "input", {"0": [1.0]}]], [["x", "input", None], ["x", "input", None]], [[1, "input", None]],
])
def test_steps_from_the_sandbox_are_read_strictly(plain):
    assert steps_from_plain(plain) is None


def test_module_output_returns_activations_in_eval_mode_only():
    layer = _layer()
    weights = {name: t.detach().clone() for name, t in layer.state_dict().items()}
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    common = (LAYERS.EncoderLayer, (8, 2, 16, 0.0, True), weights, (x,), {}, torch.device("cpu"), torch.float64, ())
    assert steps_from_plain(module_output(*common).activations)
    assert module_output(*common, training=True).activations is None


# --- the same sentence from the grading sandbox ------------------------------------------------------------

@pytest.mark.slow
def test_the_sandbox_sends_the_activations_back_and_the_grade_names_the_sub_layer(tmp_path):
    import nbformat

    from autograder.grading.selfcheck import SelfCheck

    lesson = "05-encoder-decoder"
    notebook = nbformat.read(solution_notebook(lesson), as_version=4)
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "Encoder")
    assert "x = layer(x, mask)" in cell.source
    cell.source = cell.source.replace("x = layer(x, mask)\n        return self.norm(x)",
                                      "out = layer(x, mask)\n        return self.norm(out)")
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(notebook, path)
    with SelfCheck([torch.device("cpu")]) as checker:
        score, _ = checker.score(path)
    message = next(check.message for check in score.checks if check.name == "Encoder")
    assert ("Where it goes wrong: The input of `layers.1` is not the output of `layers.0` (it is the input `x`): "
            "each layer must get the previous layer's output.") in message
    assert all(check.points == check.max_points for check in score.checks if check.name != "Encoder")
