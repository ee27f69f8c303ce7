"""AlexNet's local response normalisation (Krizhevsky et al. 2012, section 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import check_int

__all__ = ["LocalResponseNorm"]


class LocalResponseNorm(nn.Module):
    """Local response normalisation across feature maps, as in AlexNet (Krizhevsky et al.
    2012, section 3.3).

    For the activity ``a[c]`` of map ``c`` at one position, over ``C`` maps::

        b[c] = a[c] / (k + alpha * sum_{j = c - size//2}^{c + (size-1)//2} a[j]**2) ** beta

    where maps outside ``0 .. C-1`` contribute nothing (zero padding along channels).  The
    paper's values are the defaults: ``size`` (n) = 5, ``alpha`` = 1e-4, ``beta`` = 0.75,
    ``k`` = 2.  For odd ``size`` the window is centred (``c-2 .. c+2`` for 5); for even sizes
    it reaches one map further back than forward, as ``torch.nn.LocalResponseNorm`` does.

    **alpha is NOT divided by size here.**  ``torch.nn.LocalResponseNorm`` (and Caffe's LRN)
    compute ``k + alpha/n * sum``; this layer computes the paper's ``k + alpha * sum``.  The
    two agree when torch's alpha is ``n`` times this one:
    ``LocalResponseNorm(5, 1e-4, 0.75, 2)`` == ``torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2)``.
    (Caffe's reference models use ``alpha=1e-4`` *with* the division and ``k=1``, which is
    ``LocalResponseNorm(5, 2e-5, 0.75, 1.0)`` here.)

    Parameters: none.  MACs: none in the conv+linear convention; the arithmetic per output
    element is ``size`` multiply-adds (squares summed over the window), then one
    multiply-add (``k + alpha*s``), one power and one division.  Input ``(N, C, *)``, with at
    least one dimension after ``C``; output has the same shape.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.size = check_int("LocalResponseNorm size", size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch divides its alpha by size; multiplying by size first gives the paper's formula.
        return F.local_response_norm(x, self.size, self.alpha * self.size, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"
