"""A labelled grid of images, as a Pillow image (``cnnlab data show`` saves it)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnlab.errors import DataError

__all__ = ["image_grid"]

_MIN_CELL = 64  # pixels: small images are enlarged by an integer factor to at least this
_GAP = 4


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable where Pillow has FreeType
    except (TypeError, OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def image_grid(
    images: torch.Tensor,
    captions: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    scale: int | None = None,
) -> Image.Image:
    """Arrange uint8 images (N, C, H, W), C = 1 or 3, in a grid with a caption under each.

    ``columns`` defaults to about sqrt(N); ``scale`` (an integer enlargement, nearest
    neighbour so pixels stay visible) defaults to the smallest that makes a cell at least
    64 pixels high.  Returns an RGB :class:`PIL.Image.Image`.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError("image_grid needs a uint8 tensor N x C x H x W")
    n, c, h, w = images.shape
    if n == 0 or c not in (1, 3):
        raise DataError(f"image_grid needs at least one image with 1 or 3 channels, got {c}")
    if captions is not None and len(captions) != n:
        raise DataError(f"image_grid: {n} images but {len(captions)} captions")
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    scale = scale or max(1, math.ceil(_MIN_CELL / h))
    ch, cw = h * scale, w * scale
    font = _font(max(10, min(14, cw // 6)))
    text_h = 0 if captions is None else font.getbbox("Ag")[3] + 3
    cell_w = max(cw, 48)
    canvas = Image.new(
        "RGB",
        (columns * (cell_w + _GAP) + _GAP, rows * (ch + text_h + _GAP) + _GAP),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    arr = images.cpu().numpy()
    for i in range(n):
        r, col = divmod(i, columns)
        x0 = _GAP + col * (cell_w + _GAP)
        y0 = _GAP + r * (ch + text_h + _GAP)
        a = arr[i, 0] if c == 1 else np.transpose(arr[i], (1, 2, 0))
        tile = Image.fromarray(np.ascontiguousarray(a), "L" if c == 1 else "RGB")
        tile = tile.resize((cw, ch), Image.Resampling.NEAREST).convert("RGB")
        canvas.paste(tile, (x0 + (cell_w - cw) // 2, y0))
        if captions is not None:
            text = _fit_text(draw, str(captions[i]), font, cell_w)
            draw.text((x0, y0 + ch + 1), text, fill="black", font=font)
    return canvas
