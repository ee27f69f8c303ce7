"""Layers the lecture's networks need that torch lacks, or gets subtly different, and the
papers' initialisations.

Each class computes exactly what its paper describes; its docstring says what it computes, its
parameters, and its multiply-adds (MACs), so that analysis code can count it.  Shapes are
``(N, C, H, W)`` unless stated.

- :class:`LocalResponseNorm` (:mod:`~cnnlab.layers.alexnet`): AlexNet's normalisation across
  feature maps (alpha NOT divided by the window size, unlike ``torch.nn.LocalResponseNorm``).
- :class:`ScaledTanh`, :class:`Subsampling`, :class:`ConnectionTableConv2d` with
  :data:`LENET5_C3_TABLE` (:mod:`~cnnlab.layers.lenet`): LeNet-5's squashing function,
  trainable S2/S4 and partial C3.
- :class:`Inception` (:mod:`~cnnlab.layers.inception`): GoogLeNet's four-branch module with a
  real 5x5 branch.
- :class:`BasicBlock`, :class:`Bottleneck` (v1 and v1.5) and :class:`ZeroPadShortcut`
  (:mod:`~cnnlab.layers.residual`): ResNet's residual blocks with shortcut options A, B and C.
- :func:`~cnnlab.layers.init.apply_init`: He, Glorot and LeCun initialisation, used by the
  zoo, the notation and the training recipes.

ReLUs are separate, non-inplace modules so that forward hooks can record every activation.
"""

from __future__ import annotations

from cnnlab.layers.alexnet import LocalResponseNorm
from cnnlab.layers.inception import Inception
from cnnlab.layers.lenet import LENET5_C3_TABLE, ConnectionTableConv2d, ScaledTanh, Subsampling
from cnnlab.layers.residual import (
    SHORTCUTS,
    VARIANTS,
    BasicBlock,
    Bottleneck,
    ZeroPadShortcut,
)

__all__ = [
    "LENET5_C3_TABLE",
    "SHORTCUTS",
    "VARIANTS",
    "BasicBlock",
    "Bottleneck",
    "ConnectionTableConv2d",
    "Inception",
    "LocalResponseNorm",
    "ScaledTanh",
    "Subsampling",
    "ZeroPadShortcut",
]
