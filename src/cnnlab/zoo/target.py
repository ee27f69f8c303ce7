"""Turning the user's text into a model: a zoo name, a notation string or file.py:factory."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, SpecError, UserCodeError

__all__ = ["Target", "load_target", "parse_input_size", "parse_options"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_SPEC_INPUT = (3, 224, 224)
_MAX_SIDE = 2**31 - 1  # torch indexes a dimension with 32-bit integers in its kernels


@dataclass
class Target:
    """A model the user named, built, with what we know about it."""

    model: Any  # torch.nn.Module (None when only planned: see ``plan``)
    kind: str  # "zoo", "spec" or "file"
    label: str  # what to call it in headings
    input_size: tuple[int, ...]  # one example's shape it was built for: (C, H, W) for images
    info: Any = None  # ModelInfo for zoo models
    spec_text: str | None = None  # normalized notation for spec models
    options: dict[str, Any] | None = None  # the zoo options it was built with, typed
    # load_target(plan=True): what would be built (notation.BuildPlan), with model None
    plan: Any = None


def parse_input_size(text: str, what: str = "--input") -> tuple[int, ...]:
    """One example's shape: ``"3x224x224"`` -> (3, 224, 224), ``"2x20"`` -> (2, 20) (a Conv1d
    input), ``"1x4x6x6"`` (Conv3d); ``"224"`` -> (224,), which :func:`load_target` reads as a
    square image with the model's channels (and a file's model as one example of 224 values)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise CnnlabError(
            f"{what} {text!r}: expected one example's shape such as 3x224x224 or 1x28x28 "
            "(2x20 for a Conv1d, 1x4x6x6 for a Conv3d), or one number H for a square input "
            "with the model's channels"
        )
    for v in values:
        if v > _MAX_SIDE:
            raise CnnlabError(
                f"{what} {text!r}: {v:,} is larger than any size torch can index "
                f"(at most {_MAX_SIDE:,} per dimension)"
            )
    return values


# What --classes and --input say; an --option may not say it again.
_COMMON = {"num_classes": "--classes N", "in_channels": "--input CxHxW", "input_size": "--input"}


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``["variant=v1", "aux_logits=false"]`` -> {"variant": "v1", "aux_logits": "false"}:
    the text of each option, which :func:`load_target` reads by the builder's type hints."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not _IDENTIFIER.match(key):
            raise CnnlabError(f"--option {pair!r}: expected KEY=VALUE, e.g. variant=v1")
        if key in _COMMON:
            raise CnnlabError(f"--option {pair!r}: give {key} as {_COMMON[key]}")
        options[key] = raw.strip()
    return options


def _load_factory(target: str) -> Any:
    path_text, _, factory = target.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise CnnlabError(f"{path_text}: no such file (expected path/to/file.py:factory)")
    if not _IDENTIFIER.match(factory):
        raise CnnlabError(f"{target}: {factory!r} is not a Python name (expected file.py:factory)")
    module_name = f"_cnnlab_user_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CnnlabError(f"{path_text}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's own code: name it, with its line
        sys.modules.pop(module_name, None)
        raise UserCodeError(f"{path_text} does not import", exc, path) from exc
    from torch import nn

    fn = getattr(module, factory, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise CnnlabError(
            f"{path_text} has no {factory!r}; callables there: {', '.join(names) or 'none'}"
        )
    if isinstance(fn, nn.Module) or not callable(fn):  # a model instance is a model too
        return fn
    if isinstance(fn, type) and not issubclass(fn, nn.Module):
        raise CnnlabError(f"{target}: {factory} is a class, not an nn.Module or a factory")
    try:
        return fn()
    except TypeError as exc:
        if _needs_arguments(fn):
            raise CnnlabError(
                f"{target}: {factory}() needs arguments; give a factory that takes none "
                f"(e.g. def make_model(): return {factory}(...))"
            ) from None
        raise UserCodeError(f"{target}: {factory}() raised", exc, path) from exc
    except Exception as exc:  # noqa: BLE001 - the user's own code
        raise UserCodeError(f"{target}: {factory}() raised", exc, path) from exc


def _needs_arguments(fn: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.default is p.empty and p.kind in (*kinds, p.KEYWORD_ONLY) for p in params)


def _image_size(text: str, size: tuple[int, ...] | None) -> tuple[int | None, tuple | None]:
    """(channels or None, (H, W) or None) of an image size given for a zoo model or spec."""
    if size is None:
        return None, None
    if len(size) == 1:
        return None, (size[0], size[0])
    if len(size) == 2:
        return None, (size[0], size[1])
    if len(size) == 3:
        return size[0], (size[1], size[2])
    shown = "x".join(map(str, size))
    raise CnnlabError(
        f"{text}: takes an image, CxHxW (e.g. 3x224x224), not a {len(size)}-D input {shown}"
    )


def load_target(
    text: str,
    *,
    input_size: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    options: dict[str, Any] | None = None,
    plan: bool = False,
) -> Target:
    """Build what ``text`` names: a registered model, ``file.py:factory``, or a spec.

    ``input_size`` is one example's shape.  Zoo models and specs take an image: (C, H, W),
    (H, W) or (S,) for a square; it is passed to builders that size their layers from it
    (``input_size=(H, W)``, ``in_channels=C``).  A file's model takes any shape, as given.
    ``plan=True``: a zoo model or spec is not built where its builder reduces to one spec
    (:func:`~cnnlab.notation.plan_build`): the Target's ``plan`` says what it would be, and
    its ``model`` is None (the same checks and errors as building).
    """
    import torch
    from torch import nn

    from cnnlab.notation import plan_build
    from cnnlab.zoo import create_model, list_models, model_info

    options = dict(options or {})
    for key in options:
        if key in _COMMON:
            raise CnnlabError(f"option {key!r}: give it as {_COMMON[key]}, not as an option")
    given = tuple(input_size) if input_size is not None else None

    if text.endswith(".py") or ".py:" in text:
        if ".py:" not in text:
            raise CnnlabError(f"{text}: name the factory too, as {text}:make_model")
        if options:
            raise CnnlabError(
                f"{text}: --option applies to zoo models; a file's factory takes none "
                f"(got {', '.join(sorted(options))})"
            )
        model = _load_factory(text)
        if isinstance(model, torch.jit.ScriptModule):
            raise CnnlabError(
                f"{text} is a TorchScript module; cnnlab reads the Python nn.Module (give the "
                "factory that builds it before torch.jit.script)"
            )
        if not isinstance(model, nn.Module):
            raise CnnlabError(f"{text} returned {type(model).__name__}, not a torch.nn.Module")
        if given is None:
            raise CnnlabError(f"{text}: give one example's shape, as --input CxHxW (or 2x20...)")
        return Target(model, "file", text, given)

    channels, hw = _image_size(text, given)
    if text in list_models(aliases=True) or text.lower() in list_models(aliases=True):
        info = model_info(text)
        texts = {k: v for k, v in options.items() if isinstance(v, str)}
        typed = {**options, **info.parse_options(texts)}
        kwargs = dict(typed)
        if hw is not None:
            kwargs["input_size"] = hw
        c = channels or info.input_size[0]
        size = (c, *hw) if hw is not None else info.input_size
        planned = plan_build(create_model, text, num_classes, channels, **kwargs) if plan else None
        model = None if planned else create_model(text, num_classes, channels, **kwargs)
        return Target(model, "zoo", info.name, size, info=info, options=typed, plan=planned)  # type: ignore[arg-type]

    from cnnlab.notation import build_spec, format_spec, parse_spec

    try:
        spec = parse_spec(text)
    except SpecError:
        if _IDENTIFIER.match(text):
            model_info(text)  # an unknown name is the likelier mistake: suggest names
        raise
    if options:
        raise CnnlabError(f"--option applies to zoo models, not to a spec: {sorted(options)}")
    c = channels or _DEFAULT_SPEC_INPUT[0]
    hw = hw or _DEFAULT_SPEC_INPUT[1:]
    build = {"in_channels": c, "input_size": hw, "num_classes": num_classes}
    planned = plan_build(build_spec, spec, **build) if plan else None
    model = None if planned else build_spec(spec, **build)
    return Target(model, "spec", "spec", (c, *hw), spec_text=format_spec(spec), plan=planned)
