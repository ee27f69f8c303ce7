"""Normalized batches back to pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnlab.errors import CnnlabError

__all__ = ["denormalize", "normalize"]


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 pixels (N, C, H, W) of a float batch normalized as ``(pixel/255 - mean) / std``
    per channel (what :class:`~cnnlab.data.BatchPipeline` serves): ``pixel = 255 * (x * std +
    mean)``, rounded and clamped to 0..255.  Values an augmentation set outside the image
    range (random erasing's fill) are clamped, not wrapped."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise CnnlabError(f"denormalize needs a float tensor N x C x H x W, got {got}")
    c = x.shape[1]
    if len(mean) != c or len(std) != c:
        raise CnnlabError(
            f"denormalize: {c} channels but {len(mean)} means and {len(std)} stds; give one "
            "of each per channel"
        )
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    return ((x * s + m) * 255).round().clamp(0, 255).to(torch.uint8)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """float32 ``(pixel/255 - mean) / std`` of uint8 images (N, C, H, W), per channel: what
    the model saw in training (the inverse of :func:`denormalize`)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.dtype != torch.uint8:
        raise CnnlabError("normalize needs uint8 images N x C x H x W")
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise CnnlabError(f"normalize: {c} channels but {len(mean)} means and {len(std)} stds")
    m = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
    return (images.float() / 255 - m) / s
