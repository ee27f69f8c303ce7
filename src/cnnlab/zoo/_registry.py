"""The registry of model builders, with the published facts of each model.

A plain table that imports nothing of the zoo: every family module of :mod:`cnnlab.zoo`
registers its builders on :data:`REGISTRY` at import time, and :mod:`cnnlab.zoo` answers the
public queries (``list_models``, ``model_info``, ``create_model``) from it.  Names are unique
(a duplicate is a programming error and raises at import), lookups ignore case and find
aliases, and an unknown name raises :class:`~cnnlab.errors.UnknownModelError` that suggests the
closest registered names.  Options are typed by the builder's signature: a value of another
type is refused (``aux_logits="false"`` is not True), and text from a command line is read by
the same hints (:meth:`ModelInfo.parse_options`).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnlab._typed import TypedValueError, check_value, parse_text
from cnnlab.errors import CnnlabError, UnknownModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["REGISTRY", "ModelInfo", "Registry", "matches"]


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
        merged.update({key: self._checked(key, value) for key, value in kwargs.items()})
        merged.setdefault("num_classes", self.num_classes)
        merged.setdefault("in_channels", self.input_size[0])
        return self.builder(**merged)

    def option_names(self) -> list[str]:
        """The options this model takes (its builder's keywords, less those it fixes)."""
        return [k for k in inspect.signature(self.builder).parameters if k not in self.options]

    def _hint(self, key: str) -> Any:
        valid = self.option_names()
        if key not in valid and key not in self.options:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CnnlabError(
                f"{self.name}: unknown option {key!r}{hint}; its options are {', '.join(valid)}"
            )
        return _hints(self.builder).get(key, Any)

    def _checked(self, key: str, value: Any) -> Any:
        hint = self._hint(key)
        try:
            return check_value(value, hint)
        except TypedValueError as exc:
            raise CnnlabError(f"{self.name}: option {key}={value!r}: {exc}") from None

    def parse_options(self, texts: dict[str, str]) -> dict[str, Any]:
        """Options given as text (``--option aux_logits=false``), read by the builder's type
        hints: a bool from true/false/yes/no/1/0, an int, a list ``384,384,256``..."""
        values = {}
        for key, text in texts.items():
            hint = self._hint(key)
            try:
                values[key] = parse_text(text, hint)
            except TypedValueError as exc:
                raise CnnlabError(f"{self.name}: option {key}={text!r}: {exc}") from None
        return values


@functools.cache
def _hints(builder: Callable[..., Any]) -> dict[str, Any]:
    """The builder's type hints (through ``functools.partial``), resolved."""
    fn = builder.func if isinstance(builder, functools.partial) else builder
    return typing.get_type_hints(fn)


def matches(pattern: str, name: str, aliases: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether a glob matches a model, case-insensitively, by its name or one of its aliases
    (``vgg1?`` finds ``vgg_a``, ``vgg_b``, ``vgg_d`` and ``vgg_e`` through vgg11 ... vgg19)."""
    pattern = pattern.lower()
    return any(fnmatch.fnmatchcase(n.lower(), pattern) for n in (name, *aliases))


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
        """Model names matching a glob (see :func:`matches`); with ``aliases`` the aliases
        that match are listed as well."""
        out = [n for n, info in self._models.items() if matches(pattern, n, info.aliases)]
        pattern = pattern.lower()
        if aliases:
            out += [a for a in self._aliases if fnmatch.fnmatchcase(a.lower(), pattern)]
        return out

    def _key(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        low = name.lower()
        key = self._aliases.get(low, low)
        return key if key in self._models else None

    def __contains__(self, name: object) -> bool:
        return self._key(name) is not None

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str) -> ModelInfo:
        key = self._key(name)
        if key is not None:
            return self._models[key]
        known = list(self._models) + list(self._aliases)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (`cnnlab models` lists all {len(self._models)})"
        )


REGISTRY = Registry()  # the zoo's one table; its family modules add to it on import
