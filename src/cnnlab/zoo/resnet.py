"""Residual networks (He, Zhang, Ren & Sun 2015, "Deep residual learning for image
recognition"): the ImageNet networks of Table 1 and the CIFAR-10 networks of section 4.2.

ImageNet (``resnet18`` ... ``resnet152``, 224x224x3): conv1 7x7/2 with 64 filters + BN + ReLU,
pool1 3x3/2 max pool, four stages ``layer1``..``layer4`` (the paper's conv2_x..conv5_x) of
basic or bottleneck blocks with 64/128/256/512 planes, the first block of layer2..4 striding by
2, then global average pooling and a fully connected layer.  Defaults follow torchvision:
projection shortcuts where the shape changes (option B, which the paper uses for 50/101/152;
its 18/34 of Table 2 use option A, ``shortcut="A"``) and ``variant="v1.5"``, the stride of a
downsampling bottleneck on its 3x3 convolution.  ``variant="v1"`` puts it on the first 1x1, as
in the paper and its Caffe models: the same parameters, and the paper's multiply-adds
(3.8/7.6/11.3 G for 50/101/152 instead of 4.1/7.8/11.5 G).  The state_dict keys are
torchvision's (``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``...).  Both kinds
are written in the compact notation (:func:`resnet_text`, :func:`resnet_cifar_text`: the
blocks ``basic-64`` and ``bottleneck-64``, each stage a named group ``[...](name=layer1)``),
and a built model formats back to such text.

CIFAR-10 (``resnet20`` ... ``resnet1202``, 32x32x3, depth 6n+2): conv1 3x3 with 16 filters,
three stages of n basic blocks with 16/32/64 filters on 32x32, 16x16 and 8x8 maps, global
average pooling, a 10-way fully connected layer; option A (zero-padding, parameter-free)
shortcuts everywhere, as the paper says.  A 28x28 input (Fashion-MNIST with
``in_channels=1``) runs unchanged: 28 -> 14 -> 7.

Both: BN after every convolution and no conv biases; weights initialised as in He et al.
2015 ("Delving deep into rectifiers", normal with std sqrt(2/fan_out), as torchvision), BN
scale 1 and shift 0.  The global average pool replaces the paper's fixed 7x7 (ImageNet) or
8x8 (CIFAR) pooling, to which it is equal at the native input.

``zero_init_residual=True`` (not in the paper; Goyal et al. 2017, torchvision's option of the
same name) starts the last BN of every block at scale 0, so each block begins as its
shortcut.  Without it, an untrained deep network in eval mode (BN running statistics still at
mean 0, variance 1) amplifies its input block after block: resnet110's outputs exceed
1e8 and resnet1202's overflow float32 to NaN (random normal input, seed 0).  Training mode,
which normalises with batch statistics, is unaffected.
"""

from __future__ import annotations

from torch import nn

from cnnlab.layers import SHORTCUTS, VARIANTS, BasicBlock, Bottleneck
from cnnlab.layers.init import apply_init
from cnnlab.notation import SpecNet
from cnnlab.zoo._common import build, check_choice, checked_input
from cnnlab.zoo._registry import REGISTRY

__all__ = ["resnet", "resnet_cifar", "resnet_cifar_text", "resnet_text"]

PAPER = (
    "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; "
    "arXiv:1512.03385)"
)

# Table 1: depth -> (block, blocks in conv2_x..conv5_x)
IMAGENET: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
# Section 4.2: depth 6n+2 -> n basic blocks per stage
CIFAR: dict[int, int] = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}


# The paper's words for the two blocks, in the notation: basic-64 is [3x3, 64; 3x3, 64],
# bottleneck-64 is [1x1, 64; 3x3, 64; 1x1, 256] (Table 1).
_WORD = {BasicBlock: "basic", Bottleneck: "bottleneck"}


def _stage(word: str, planes: int, blocks: int, stride: int, options: str, name: str) -> str:
    """One stage in the notation: ``blocks`` blocks, the first with ``stride``, as one module
    ``name`` whose blocks are numbered 0, 1, ... (torchvision's ``layer2.0``)."""
    first = f"{word}-{planes}{'/2' if stride == 2 else ''}{options}"
    block = f"{word}-{planes}{options}"
    rest = {1: "", 2: f"-{block}"}.get(blocks, f"-({block})*{blocks - 1}")
    return f"[{first}{rest}](name={name})"


def _options(shortcut: str, variant: str | None) -> str:
    written = [f"shortcut={shortcut}"] if shortcut != "B" else []
    written += [f"variant={variant}"] if variant not in (None, "v1.5") else []
    return f"({','.join(written)})" if written else ""


def resnet_text(depth: int, num_classes: int = 1000, variant: str = "v1.5",
                shortcut: str = "B") -> str:  # fmt: skip
    """An ImageNet ResNet of Table 1 in the compact notation, with torchvision's module
    names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``): the text :func:`resnet`
    builds.  For example ``resnet_text(18)`` is::

        conv7/2-64(bias=false,name=conv1)-bn(name=bn1)-relu(name=relu1)-maxpool3/2(pad=1)-
        [basic-64-basic-64](name=layer1)-[basic-128/2-basic-128](name=layer2)-...-
        gap(name=avgpool)-fc-1000(name=fc)
    """
    check_choice("resnet", "depth", depth, IMAGENET)
    block, counts = IMAGENET[depth]
    options = _options(shortcut, variant if block is Bottleneck else None)
    stages = [
        _stage(_WORD[block], planes, n, 1 if i == 0 else 2, options, f"layer{i + 1}")
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts, strict=True))
    ]
    return "-".join(
        ["conv7/2-64(bias=false,name=conv1)-bn(name=bn1)-relu(name=relu1)-maxpool3/2(pad=1)",
         *stages, f"gap(name=avgpool)-fc-{num_classes}(name=fc)"]
    )  # fmt: skip


def resnet_cifar_text(depth: int, num_classes: int = 10, shortcut: str = "A") -> str:
    """A CIFAR-10 ResNet of section 4.2 in the compact notation (the text
    :func:`resnet_cifar` builds): ``conv3-16(bias=false,name=conv1)-bn(name=bn1)-
    relu(name=relu1)``, three stages of n ``basic`` blocks of 16, 32 and 64 planes, then
    ``gap(name=avgpool)-fc-10(name=fc)``."""
    check_choice("resnet_cifar", "depth", depth, CIFAR)
    n, options = CIFAR[depth], _options(shortcut, None)
    stages = [
        _stage("basic", planes, n, 1 if i == 0 else 2, options, f"layer{i + 1}")
        for i, planes in enumerate((16, 32, 64))
    ]
    return "-".join(
        ["conv3-16(bias=false,name=conv1)-bn(name=bn1)-relu(name=relu1)", *stages,
         f"gap(name=avgpool)-fc-{num_classes}(name=fc)"]
    )  # fmt: skip


def _built(name: str, text: str, in_channels: int, hw: tuple[int, int], native: tuple[int, int],
           zero_init_residual: bool) -> SpecNet:  # fmt: skip
    """The network of ``text``, initialised as torchvision and the paper do: He's
    initialisation of the convolutions, the classifier left at PyTorch's default, BatchNorm at
    weight 1 and shift 0 (as built); ``zero_init_residual`` as in the module docstring."""
    model = build(name, text, in_channels=in_channels, hw=hw, native=native)
    apply_init(model, "he", linear=False)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, BasicBlock | Bottleneck):
                nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)
    return model


def resnet(
    *,
    depth: int,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    variant: str = "v1.5",
    shortcut: str = "B",
    zero_init_residual: bool = False,
) -> SpecNet:
    """Build an ImageNet ResNet of Table 1 (``depth`` 18, 34, 50, 101 or 152).

    ``variant`` ("v1.5" or "v1") matters for the bottleneck networks only; ``shortcut``: "A"
    zero-padding, "B" projection where the shape changes, "C" projection everywhere;
    ``zero_init_residual`` as in the module docstring.
    """
    check_choice("resnet", "depth", depth, IMAGENET)
    name = f"resnet{depth}"
    hw = checked_input(name, num_classes, in_channels, input_size, (224, 224))
    check_choice(name, "variant", variant, VARIANTS)
    check_choice(name, "shortcut", shortcut, SHORTCUTS)
    text = resnet_text(depth, num_classes, variant, shortcut)
    return _built(name, text, in_channels, hw, (224, 224), zero_init_residual)


def resnet_cifar(
    *,
    depth: int,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    shortcut: str = "A",
    zero_init_residual: bool = False,
) -> SpecNet:
    """Build a CIFAR-10 ResNet of section 4.2 (``depth`` = 6n+2: 20, 32, 44, 56, 110, 1202).

    ``shortcut="A"`` (the paper's) zero-pads; "B" and "C" project as in :func:`resnet`;
    ``zero_init_residual`` as in the module docstring.
    """
    check_choice("resnet_cifar", "depth", depth, CIFAR)
    name = f"resnet{depth}"
    hw = checked_input(name, num_classes, in_channels, input_size, (32, 32))
    check_choice(name, "shortcut", shortcut, SHORTCUTS)
    text = resnet_cifar_text(depth, num_classes, shortcut)
    return _built(name, text, in_channels, hw, (32, 32), zero_init_residual)


# depth -> (params, MACs v1.5 at 224x224, top-5 error); the paper's
# Table 3 (10-crop val) has no ResNet-18 row, so its number is torchvision's weights'.
_IMAGENET_FACTS = {
    18: (11_689_512, 1_814_073_344, "10.92% (ImageNet val, 1 crop, torchvision's weights)"),
    34: (21_797_672, 3_663_761_408, "7.46% (ImageNet val, 10 crops, option B; Table 3)"),
    50: (25_557_032, 4_089_184_256, "6.71% (ImageNet val, 10 crops; Table 3)"),
    101: (44_549_160, 7_801_405_440, "6.05% (ImageNet val, 10 crops; Table 3)"),
    152: (60_192_808, 11_513_626_624, "5.71% (ImageNet val, 10 crops; Table 3); ensemble: "
          "3.57% test (Table 5)"),
}  # fmt: skip
# depth -> (params, MACs at 32x32, CIFAR-10 test error, Table 6)
_CIFAR_FACTS = {
    20: (269_722, 40_551_040, "8.75%"),
    32: (464_154, 68_862_592, "7.51%"),
    44: (658_586, 97_174_144, "7.17%"),
    56: (853_018, 125_485_696, "6.97%"),
    110: (1_727_962, 252_887_680, "6.43% best of 5, mean 6.61 +- 0.16"),
    1202: (19_421_274, 2_829_238_912, "7.93%"),
}

for _depth, (_params, _macs, _top5) in _IMAGENET_FACTS.items():
    _block = "bottleneck" if IMAGENET[_depth][0] is Bottleneck else "basic"
    REGISTRY.register(
        f"resnet{_depth}",
        paper=PAPER,
        input_size=(3, 224, 224),
        num_classes=1000,
        params=_params,
        macs=_macs,
        top5=_top5,
        summary=f"ImageNet ResNet-{_depth}, {_block} blocks {list(IMAGENET[_depth][1])}; v1.5 "
        "(stride on the 3x3) with projection shortcuts, as torchvision",
        options={"depth": _depth},
    )(resnet)

for _depth, (_params, _macs, _err) in _CIFAR_FACTS.items():
    REGISTRY.register(
        f"resnet{_depth}",
        paper=PAPER,
        input_size=(3, 32, 32),
        num_classes=10,
        params=_params,
        macs=_macs,
        top5=f"CIFAR-10 error {_err} (top-1, test; Table 6)",
        summary=f"CIFAR-10 ResNet-{_depth} (n={CIFAR[_depth]}): 16/32/64 filters, "
        "zero-padding (option A) shortcuts",
        options={"depth": _depth},
    )(resnet_cifar)
