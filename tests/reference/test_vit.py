"""The Vision Transformer's patches and embedding against PyTorch's convolution, and its image task."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tfcourse.training import seeded_batches, train
from tfcourse.vit import (
    OrientedBars,
    PatchEmbedding,
    VisionTransformer,
    accuracy,
    classification_loss,
    patchify,
)


@pytest.mark.parametrize("channels, height, width, patch", [(1, 8, 8, 4), (3, 6, 9, 3), (2, 4, 4, 1), (3, 4, 4, 4)])
def test_patchify_matches_torch_unfold(device, dtype, channels, height, width, patch):
    images = torch.randn(2, channels, height, width, device=device, dtype=dtype)
    expected = F.unfold(images, kernel_size=patch, stride=patch).transpose(1, 2)  # (B, N, C p p)
    assert torch.equal(patchify(images, patch), expected)


def test_patchify_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiple"):
        patchify(torch.zeros(1, 1, 6, 6), 4)


def test_patch_embedding_equals_a_strided_convolution_with_class_token_and_positions(device, dtype, tol):
    embed = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, d_model=5).to(device, dtype)
    with torch.no_grad():
        embed.cls_token.normal_()
    images = torch.randn(2, 3, 8, 8, device=device, dtype=dtype)
    kernel = embed.proj.weight.view(5, 3, 4, 4)
    patches = F.conv2d(images, kernel, embed.proj.bias, stride=4).flatten(2).transpose(1, 2)  # (B, 4, 5)
    expected = torch.cat([embed.cls_token.expand(2, 1, 5), patches], dim=1) + embed.pos_embedding
    out = embed(images)
    assert out.shape == (2, 5, 5)
    assert_close(out, expected, **tol)


def test_vision_transformer_classifies_from_the_class_token_only():
    model = VisionTransformer(8, 4, 1, n_classes=3, d_model=16, n_heads=2, n_layers=1).double().eval()
    images = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    assert model(images).shape == (4, 3)
    tokens = model.encoder(model.embed(images))
    assert_close(model(images), model.head(tokens[:, 0]))


def test_oriented_bars_are_seeded_and_draw_the_labelled_orientation():
    task = OrientedBars(size=12, noise=0.0)
    images, labels = task.batch(40, seed=3)
    assert torch.equal(images, task.batch(40, seed=3)[0]) and not torch.equal(images, task.batch(40, seed=4)[0])
    assert set(labels.tolist()) == {0, 1, 2, 3}
    for image, label in zip(images[:, 0], labels.tolist()):
        rows, cols = image.nonzero(as_tuple=True)
        row_step, col_step = OrientedBars.STEPS[label]
        assert 12 // 3 <= len(rows) <= 12 // 2
        assert torch.equal(rows - rows[0], row_step * torch.arange(len(rows)))
        order = cols.argsort(descending=col_step < 0) if label == 0 else torch.arange(len(cols))
        assert torch.equal(cols[order] - cols[order][0], col_step * torch.arange(len(cols)))


def test_a_short_training_run_beats_chance_clearly():
    torch.manual_seed(0)
    task = OrientedBars(size=8, noise=0.2)
    model = VisionTransformer(8, 2, 1, n_classes=4, d_model=16, n_heads=2, n_layers=1)
    train(model, seeded_batches(task.batch, 32, seed=0), classification_loss, steps=200, lr=3e-3,
          device="cpu", progress=False)
    assert accuracy(model, task.batch(400, seed=10**6)) > 0.45  # chance is 0.25
