"""The architecture zoo: one file per family, each registering its builders on import.

The zoo owns the public queries over its models: :func:`list_models`, :func:`model_info` and
:func:`create_model`.  Families are imported on the first query (``import cnnlab.zoo`` alone
needs no torch), in the lecture's order, which is the order ``cnnlab models`` lists them.  A
family module must be listed in :data:`FAMILIES`; the test suite checks that every public module
of this package is, and that each registers at least one model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cnnlab.zoo._registry import REGISTRY, ModelInfo, Registry

if TYPE_CHECKING:
    from torch import nn

    from cnnlab.notation import BuildPlan

__all__ = [
    "FAMILIES",
    "REGISTRY",
    "ModelInfo",
    "Registry",
    "create_model",
    "list_models",
    "model_info",
    "model_spec",
]

# The family modules, in the lecture's order.  ``target`` (turning the user's text into a model)
# is a helper over the zoo, not a family.
FAMILIES = ("lenet", "alexnet", "zfnet", "vgg", "googlenet", "resnet")


def _load_families() -> None:
    for family in FAMILIES:  # a module already imported costs a dict lookup
        importlib.import_module(f"cnnlab.zoo.{family}")


def list_models(pattern: str = "*", aliases: bool = False) -> list[str]:
    """Registered model names matching a glob pattern (``"resnet*"``): by family in the
    lecture's order (:data:`FAMILIES`), then in each family's own order, whichever family
    module happened to be imported first."""
    _load_families()
    names = REGISTRY.names(pattern, aliases=aliases)
    return sorted(names, key=lambda n: _FAMILY_RANK[_family_of(REGISTRY.get(n).builder)])


_FAMILY_RANK = {f"cnnlab.zoo.{family}": i for i, family in enumerate(FAMILIES)}


def _family_of(builder: Any) -> str:
    return getattr(builder, "func", builder).__module__  # through functools.partial


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered name or alias."""
    _load_families()
    return REGISTRY.get(name)


def create_model(
    name: str, num_classes: int | None = None, in_channels: int | None = None, **options: Any
) -> nn.Module:
    """Build a registered model as a plain CPU float32 ``nn.Module``.

    ``num_classes`` and ``in_channels`` default to the paper's; ``input_size=(H, W)`` (or an
    int) builds for another input size where the architecture depends on it; other options
    are the family's (``variant="v1"``, ``aux_logits=True``...).
    """
    info = model_info(name)
    kwargs: dict[str, Any] = dict(options)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    return info.create(**kwargs)


def model_spec(
    name: str, num_classes: int | None = None, in_channels: int | None = None, **options: Any
) -> BuildPlan | None:
    """What :func:`create_model` with these arguments would build, without building it: a
    :class:`~cnnlab.notation.BuildPlan` (the model's spec with its options applied, its input
    and its class name), or None for a model that is more than one spec (GoogLeNet with
    ``aux_logits=True``).  The arguments are checked as ``create_model`` checks them.  Every
    family's builders only initialise values after building their spec, so the plan has the
    model's structure and parameter counts exactly (the test suite compares the two)."""
    from cnnlab.notation.build import plan_build

    return plan_build(create_model, name, num_classes, in_channels, **options)
