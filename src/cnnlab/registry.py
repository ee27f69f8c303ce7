"""The one registry of model builders, with the published facts of each model.

Every zoo family registers its builders here at import time.  Names are unique (a duplicate is
a programming error and raises at import), lookups are exact, and an unknown name raises
:class:`~cnnlab.errors.UnknownModelError` that suggests the closest registered names.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import CnnlabError, UnknownModelError

__all__ = ["ModelInfo", "Registry", "REGISTRY", "create_model", "list_models", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one model: how to build it and what its paper reports.

    ``params`` is the exact parameter count at the native input with ``num_classes`` classes
    (the test suite holds every model to it).  ``macs`` is the multiply-add count of
    convolutions and linear layers at that input, where published or derived.  ``top5`` is the
    published ImageNet top-5 error (or, for CIFAR models, the CIFAR-10 error) as text with its
    source, because such numbers always come with a protocol.
    """

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    input_size: tuple[int, int, int]  # (C, H, W) the paper feeds it
    num_classes: int
    params: int
    macs: int | None = None
    top5: str | None = None
    summary: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # fixed options of this entry
    aliases: tuple[str, ...] = ()

    def create(self, **kwargs: Any) -> nn.Module:
        for key, value in kwargs.items():
            if key in self.options and self.options[key] != value:
                raise CnnlabError(
                    f"{self.name}: option {key}={value!r} contradicts the model, which fixes "
                    f"{key}={self.options[key]!r}; build another registered model instead"
                )
        merged = dict(self.options)
        merged.update(kwargs)
        merged.setdefault("num_classes", self.num_classes)
        merged.setdefault("in_channels", self.input_size[0])
        valid = inspect.signature(self.builder).parameters
        unknown = [k for k in merged if k not in valid]
        if unknown:
            choices = [k for k in valid if k not in self.options]
            close = difflib.get_close_matches(unknown[0], choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CnnlabError(
                f"{self.name}: unknown option {unknown[0]!r}{hint}; "
                f"its options are {', '.join(choices)}"
            )
        return self.builder(**merged)


class Registry:
    """A name -> :class:`ModelInfo` table, strict about duplicates."""

    def __init__(self) -> None:
        self._models: dict[str, ModelInfo] = {}
        self._aliases: dict[str, str] = {}

    def add(self, info: ModelInfo) -> ModelInfo:
        for name in (info.name, *info.aliases):
            if name in self._models or name in self._aliases:
                raise ValueError(f"model name {name!r} is registered twice")
        self._models[info.name] = info
        for alias in info.aliases:
            self._aliases[alias] = info.name
        return info

    def register(self, name: str, **kwargs: Any) -> Callable[[Callable[..., nn.Module]], Any]:
        """Decorator form: ``@REGISTRY.register("lenet5", paper=..., ...)``."""

        def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            self.add(ModelInfo(name=name, builder=builder, **kwargs))
            return builder

        return wrap

    def names(self, pattern: str = "*", aliases: bool = False) -> list[str]:
        pool = list(self._models) + (list(self._aliases) if aliases else [])
        return [n for n in pool if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._models or name in self._aliases

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str) -> ModelInfo:
        key = self._aliases.get(name, name)
        if key in self._models:
            return self._models[key]
        known = list(self._models) + list(self._aliases)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (`cnnlab models` lists all {len(self._models)})"
        )


REGISTRY = Registry()


def list_models(pattern: str = "*", aliases: bool = False) -> list[str]:
    """Registered model names matching a glob pattern (``"resnet*"``), in registration order."""
    _load_zoo()
    return REGISTRY.names(pattern, aliases=aliases)


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered name or alias."""
    _load_zoo()
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


def _load_zoo() -> None:
    # The zoo registers itself on import; importing it here keeps `registry` usable on its own.
    import cnnlab.zoo  # noqa: F401
