"""The Vision Transformer (Dosovitskiy et al., 2021): an image read as a sequence of patches.

An image ``(C, H, W)`` is cut into ``N = (H / p) (W / p)`` non-overlapping ``p x p`` patches, each
flattened to a vector of ``C p^2`` numbers and projected to ``d_model`` by one linear map (the same
numbers as a convolution with kernel and stride ``p``). A learned class token is put in front,
learned positions are added, and a Transformer encoder (the course's pre-LN
:class:`~tfcourse.encoder_decoder.Encoder`, no mask: every patch sees every patch) mixes them; the
class token's final vector is classified:

    z_0 = [x_cls; x_1 E; ...; x_N E] + E_pos,   z_L = Encoder(z_0),   logits = head(z_L[0])

:class:`OrientedBars` is a small image task made on the machine: which way a bar points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.encoder_decoder import Encoder

Batch = tuple[Tensor, Tensor]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into flattened non-overlapping patches, in reading order.

    ``images``: ``(B, C, H, W)`` with ``H`` and ``W`` multiples of ``patch_size`` ``p`` ->
    ``(B, (H / p) (W / p), C p p)``. Patch ``r * (W / p) + c`` is the block of rows
    ``r p .. r p + p - 1`` and columns ``c p .. c p + p - 1``, flattened channel first, then row,
    then column (the layout of a ``Conv2d`` weight ``(out, C, p, p)``).
    """
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image size {height}x{width} is not a multiple of patch_size {patch_size}")
    rows, cols = height // patch_size, width // patch_size
    blocks = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    return blocks.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, channels * patch_size**2)


class PatchEmbedding(nn.Module):
    """Patches projected to ``d_model``, a class token in front, learned positions added.

    Members: ``proj`` (``nn.Linear(C p^2, d_model)``), ``cls_token`` (``(1, 1, d_model)``) and
    ``pos_embedding`` (``(1, N + 1, d_model)``). ``(B, C, H, W) -> (B, N + 1, d_model)``.
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        self.patch_size = patch_size
        n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Linear(in_channels * patch_size**2, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, d_model))

    def forward(self, images: Tensor) -> Tensor:
        patches = self.proj(patchify(images, self.patch_size))  # (B, N, d_model)
        cls = self.cls_token.expand(patches.size(0), -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embedding


class VisionTransformer(nn.Module):
    """Patch embedding, a pre-LN encoder and a linear ``head`` on the class token: ``(B, C, H, W) -> (B, n_classes)``."""

    def __init__(self, image_size: int, patch_size: int, in_channels: int, n_classes: int, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, d_ff: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.embed = PatchEmbedding(image_size, patch_size, in_channels, d_model)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff or 4 * d_model, dropout, norm_first=True,
                               activation="gelu")
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.encoder(self.embed(images))[:, 0])


@dataclass(frozen=True)
class OrientedBars:
    """Grey ``size x size`` images of one bar in one of four orientations, in noise.

    Class 0: horizontal, 1: vertical, 2: diagonal (down to the right), 3: anti-diagonal. The bar
    has a random length (``size // 3`` to ``size // 2`` pixels), position and brightness (0.5 to
    1); Gaussian noise of standard deviation ``noise`` covers the whole image. Chance is 25%.
    """

    size: int = 16
    noise: float = 0.3
    CLASSES = ("horizontal", "vertical", "diagonal", "anti-diagonal")
    STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (row, column) step along the bar, per class

    def batch(self, batch_size: int, seed: int) -> Batch:
        """``(images (batch_size, 1, size, size), labels (batch_size,))``, a function of ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(len(self.CLASSES), (batch_size,), generator=generator)
        images = self.noise * torch.randn(batch_size, 1, self.size, self.size, generator=generator)
        for image, label in zip(images, labels.tolist()):
            self._draw_bar(image[0], self.STEPS[label], generator)
        return images, labels

    def _draw_bar(self, canvas: Tensor, step: tuple[int, int], generator: torch.Generator) -> None:
        """Add a bar along ``step`` at a random place that fits, in place."""
        length = int(torch.randint(self.size // 3, self.size // 2 + 1, (), generator=generator))
        span = length - 1
        row_range = (0, self.size - step[0] * span)
        col_range = (span, self.size) if step[1] < 0 else (0, self.size - step[1] * span)
        row, col = (int(torch.randint(low, high, (), generator=generator)) for low, high in (row_range, col_range))
        brightness = 0.5 + 0.5 * torch.rand((), generator=generator)
        offsets = torch.arange(length)
        canvas[row + step[0] * offsets, col + step[1] * offsets] += brightness


def classification_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Cross-entropy of ``model(images)`` against the labels."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


@torch.no_grad()
def accuracy(model: nn.Module, batch: Batch) -> float:
    """Fraction of ``batch``'s images whose most likely class is the label (the model in eval mode)."""
    images, labels = batch
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = (model(images.to(device)).argmax(-1).cpu() == labels).float().mean().item()
    model.train(was_training)
    return correct
