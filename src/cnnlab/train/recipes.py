"""The papers' training recipes, and each model family's default.

:data:`RECIPES` holds the recipes of the lecture's case studies, written as the papers give
them where that is possible; every deviation is in the recipe's ``about`` text.
:func:`default_recipe` picks a model family's recipe when none is named.
"""

from __future__ import annotations

import fnmatch

from cnnlab.train.recipe import Recipe

__all__ = ["RECIPES", "default_recipe"]


# ---- the recipes ---------------------------------------------------------------------------------
_ALEXNET = Recipe(
    name="alexnet",
    about=(
        "Krizhevsky et al. 2012, section 5 (and the lecture's slide): SGD momentum 0.9, batch "
        "128, lr 0.01 divided by 10 when the validation accuracy stops improving, weight decay "
        "5e-4, dropout 0.5, random crops and flips, about 90 epochs.  Deviations: the paper "
        "initialised weights from N(0, 0.01) and some biases to 1; cnnlab uses He's "
        "initialisation, which starts a net without LRN tuning as well; crops are padded "
        "crops of the whole image instead of 224 of 256."
    ),
    epochs=90,
    batch_size=128,
    lr=0.01,
    lr_batch=128,
    optimizer="sgd",
    momentum=0.9,
    weight_decay=5e-4,
    schedule="plateau",
    patience=3,
    min_lr=1e-5,
    augment="standard",
    dropout=0.5,
    init="he",
)

_VGG = Recipe(
    name="vgg",
    about=(
        "Simonyan & Zisserman 2015, section 3.1: SGD momentum 0.9, batch 256, lr 0.01 divided "
        "by 10 when the validation accuracy stops improving (3 times, 74 epochs), weight decay "
        "5e-4, dropout 0.5 on the first two FC layers, random crops and flips.  The paper "
        "trained configuration A from N(0, 0.01) and initialised deeper nets from it; it notes "
        "that Glorot's initialisation works without pre-training, and cnnlab uses He's (the "
        "'Xavier/2' of the lecture), made for ReLU nets, to train any VGG from scratch."
    ),
    epochs=74,
    batch_size=256,
    lr=0.01,
    lr_batch=256,
    weight_decay=5e-4,
    schedule="plateau",
    patience=3,
    min_lr=1e-5,
    augment="standard",
    dropout=0.5,
    init="he",
)

_RESNET = Recipe(
    name="resnet",
    about=(
        "He et al. 2016, section 3.4: BatchNorm after every convolution, He initialisation, "
        "SGD momentum 0.9, batch 256, lr 0.1 divided by 10 when the error plateaus, up to "
        "60x10^4 iterations (about 120 epochs of ImageNet), weight decay 1e-4, no dropout, "
        "crops and flips.  The lecture's slide says weight decay 1e-5; the paper says 1e-4 "
        "(0.0001), and cnnlab follows the paper."
    ),
    epochs=120,
    batch_size=256,
    lr=0.1,
    lr_batch=256,
    weight_decay=1e-4,
    schedule="plateau",
    patience=5,
    min_lr=1e-4,
    augment="standard",
    init="he",
)

_CIFAR_RESNET = Recipe(
    name="cifar-resnet",
    about=(
        "He et al. 2016, section 4.2 (CIFAR-10): lr 0.1, divided by 10 at 32k and 48k "
        "iterations, stop at 64k, batch 128, weight decay 1e-4, momentum 0.9, He "
        "initialisation, no dropout, 4-pixel zero padding + random 32x32 crop + flip.  The "
        "schedule counts iterations, so on another dataset it keeps the paper's number of "
        "updates (64k steps of 128 are 182 epochs of 45k images, 152 of 54k)."
    ),
    epochs=None,
    iterations=64_000,
    batch_size=128,
    lr=0.1,
    lr_batch=128,
    weight_decay=1e-4,
    schedule="step",
    milestones=(32_000, 48_000),
    milestone_unit="iteration",
    augment="standard",
    init="he",
)

_GOOGLENET = Recipe(
    name="googlenet",
    about=(
        "Szegedy et al. 2015, section 6: asynchronous SGD with momentum 0.9, the learning rate "
        "decreased by 4% every 8 epochs, auxiliary classifiers weighted 0.3, Polyak averaging "
        "for the final model, photometric distortions and crops of many sizes.  cnnlab keeps "
        "the optimizer, the auxiliary weight and the schedule's shape (a step of 0.96 every 8 "
        "epochs), uses lr 0.01 at batch 128 (the paper gives no base rate), weight decay 2e-4 "
        "(the reference Caffe model's), standard crops and flips, and no Polyak averaging."
    ),
    epochs=96,
    batch_size=128,
    lr=0.01,
    lr_batch=128,
    weight_decay=2e-4,
    schedule="step",
    milestones=tuple(range(8, 96, 8)),
    gamma=0.96,
    augment="standard",
    aux_weight=0.3,
)

_LENET = Recipe(
    name="lenet",
    about=(
        "LeCun et al. 1998 trained LeNet-5 for 20 passes with one example per update "
        "(stochastic diagonal Levenberg-Marquardt, a per-weight step size from a Hessian "
        "estimate, global rate 5e-4 lowered to 1e-5), an MSE-like loss on 10 RBF outputs "
        "and its own uniform initialisation in +-2.4/fan-in.  cnnlab keeps the network, the "
        "initialisation and the absence of augmentation; it trains the linear output with "
        "cross-entropy by mini-batch SGD with Nesterov momentum and a one-cycle schedule, "
        "which is what gets it to its accuracy in a few epochs on a CPU."
    ),
    epochs=12,
    batch_size=64,
    lr=0.05,
    lr_batch=64,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-5,
    schedule="onecycle",
    warmup=0.15,
    augment="none",
    init="lenet",
)

_FAST = Recipe(
    name="fast",
    about=(
        "The quickest way cnnlab knows to a good accuracy on a CPU (a later issue tunes it): "
        "a small BatchNorm net that pools early, SGD with Nesterov momentum, a one-cycle "
        "schedule, label smoothing 0.2, BatchNorm/bias parameters without weight decay, "
        "batched crop-and-flip augmentation and flip test-time augmentation, after the fast "
        "CIFAR-10 training records (Page 2018; Jordan 2024, airbench)."
    ),
    model=(
        "conv3-32-bn-relu-maxpool-conv3-64-bn-relu-maxpool-conv3-128-bn-relu-maxpool-gap-"
        "fc-10,softmax"
    ),
    epochs=6,
    batch_size=256,
    lr=0.2,
    lr_batch=256,
    nesterov=True,
    weight_decay=5e-4,
    decay_norm_and_bias=False,
    schedule="onecycle",
    warmup=0.2,
    label_smoothing=0.2,
    augment="standard",
    test_flip=True,
    init="default",
)

RECIPES: dict[str, Recipe] = {
    r.name: r for r in (_LENET, _ALEXNET, _VGG, _RESNET, _CIFAR_RESNET, _GOOGLENET, _FAST)
}

# model-name pattern -> the family's default recipe (first match wins); notation and file
# targets default to "fast"'s hyperparameters.
_FAMILY_DEFAULTS = (
    ("lenet5*", "lenet"),
    ("alexnet*", "alexnet"),
    ("zfnet*", "alexnet"),
    ("vgg*", "vgg"),
    ("googlenet*", "googlenet"),
    ("resnet18*", "resnet"),
    ("resnet34*", "resnet"),
    ("resnet50*", "resnet"),
    ("resnet101*", "resnet"),
    ("resnet152*", "resnet"),
    ("resnet*", "cifar-resnet"),  # resnet20 ... resnet1202
)


def default_recipe(model_name: str | None) -> str:
    """The recipe a model family trains with when none is named (``"fast"`` for notation
    and file targets, and for no target at all)."""
    for pattern, recipe in _FAMILY_DEFAULTS:
        if model_name and fnmatch.fnmatchcase(model_name, pattern):
            return recipe
    return "fast"
