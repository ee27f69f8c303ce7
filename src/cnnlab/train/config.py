"""The layered configuration of a run.

:func:`resolve_config` layers, later winning: the recipe (named, or the model family's
default), a TOML file, ``key=value`` pairs (``--set``), then the dedicated flags.  Keys form
one flat namespace over :class:`~cnnlab.train.recipe.Recipe` and
:class:`~cnnlab.train.recipe.Options` (a TOML file may also group them in ``[recipe]`` and
``[options]`` tables, as a run's ``config.toml`` does).  Every value is type-checked; an
unknown key, a wrong type or an impossible value is one :class:`ConfigError` naming the key,
the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlab._typed import TypedValueError, parse_text, type_name
from cnnlab.train.arguments import check_val_every
from cnnlab.train.recipe import ConfigError, Options, Recipe
from cnnlab.train.recipes import RECIPES, default_recipe

__all__ = ["describe_keys", "resolve_config"]


_SECTIONS = {"recipe": Recipe, "options": Options}
# What a run's config.toml holds beside [recipe] and [options]: a record of the run, skipped
# when such a file is given back as --config.
_RECORD_ONLY = ("target", "dataset", "model", "data", "environment", "cnnlab")


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


_HINTS = {cls: typing.get_type_hints(cls) for cls in (Recipe, Options)}
_OWNER = {name: cls for cls in (Recipe, Options) for name in _fields(cls)}


def describe_keys() -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) of every configuration key, recipe keys first."""
    rows = []
    for cls in (Recipe, Options):
        for name, f in _fields(cls).items():
            rows.append((name, type_name(_HINTS[cls][name]), repr(f.default), f.metadata["doc"]))
    return rows


def resolve_config(
    recipe: str | Recipe | None = None,
    *,
    model_name: str | None = None,
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[Recipe, Options]:
    """The resolved (recipe, options): ``recipe`` (a name, a :class:`Recipe`, or the
    default of ``model_name``'s family), then ``config_file`` (TOML), then ``sets``
    (``"key=value"`` texts), then ``flags`` (values already typed; None means not given).
    """
    if recipe is None:
        recipe = default_recipe(model_name)
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ConfigError(_unknown("recipe", recipe, list(RECIPES)))
        recipe = RECIPES[recipe]
    values: dict[str, Any] = {**dataclasses.asdict(Options()), **dataclasses.asdict(recipe)}
    if config_file is not None:
        for key, value in _read_toml(Path(config_file)).items():
            values[key] = _check_value(key, value, f"{config_file}: ")
    for pair in sets or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set lr=0.05")
        values[key] = _check_value(key, _parse_text(key, text.strip(), "--set "), "--set ")
    for key, value in (flags or {}).items():
        if value is None:
            continue
        values[key] = _check_value(key, value, f"--{key.replace('_', '-')}: ")
        if key == "epochs":  # --epochs E: train E epochs, whatever the recipe counted in
            values["iterations"] = None
    recipe_values = {k: v for k, v in values.items() if _OWNER[k] is Recipe}
    option_values = {k: v for k, v in values.items() if _OWNER[k] is Options}
    resolved = Recipe(**recipe_values)
    options = Options(**option_values)
    _check_together(resolved, options)
    return resolved, options


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                if _OWNER.get(sub) is not _SECTIONS[key]:
                    raise ConfigError(
                        _unknown(f"{path}: [{key}] key", sub, list(_fields(_SECTIONS[key])))
                    )
                flat[sub] = v
        elif key in _RECORD_ONLY:
            continue
        else:
            flat[key] = value
    return flat


def _unknown(what: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (valid: {', '.join(valid)})"


def _parse_text(key: str, text: str, where: str) -> Any:
    """A ``--set`` value, read as the key's type (:func:`cnnlab._typed.parse_text`)."""
    if key not in _OWNER:
        raise ConfigError(where + _unknown("key", key, list(_OWNER)))
    try:
        return parse_text(text, _HINTS[_OWNER[key]][key])
    except TypedValueError as exc:
        raise ConfigError(f"{where}{key}={text!r}: {exc}") from None


def _check_value(key: str, value: Any, where: str) -> Any:
    """``value`` for ``key``, type- and range-checked (ints are accepted for floats)."""
    if key not in _OWNER:
        raise ConfigError(where + _unknown("key", key, list(_OWNER)))
    cls = _OWNER[key]
    hint = _HINTS[cls][key]
    meta = _fields(cls)[key].metadata
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}{key}={value!r}: {what}")

    if value is None:
        if optional:
            return None
        raise bad(f"expected {type_name(hint)}, not none")
    if typing.get_origin(base) is tuple:
        if not isinstance(value, list | tuple):
            raise bad(f"expected {type_name(hint)}")
        inner = typing.get_args(base)[0]
        items = tuple(_scalar(key, v, inner, meta, hint, bad) for v in value)
        if key == "betas" and len(items) != 2:
            raise bad("expected two numbers (beta1, beta2)")
        if key == "milestones" and any(b <= a for a, b in zip(items, items[1:], strict=False)):
            raise bad("milestones must increase")
        return items
    return _scalar(key, value, base, meta, hint, bad)


def _scalar(key: str, value: Any, typ: type, meta: Mapping, hint: Any, bad) -> Any:
    if typ is bool:
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"expected {type_name(hint)}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"expected a number ({type_name(hint)})")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise bad("expected a finite number")
    elif typ is str and not isinstance(value, str):
        raise bad("expected text")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint_text = f"did you mean {close[0]!r}? " if close else ""
        raise bad(f"{hint_text}valid: {', '.join(choices)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low_ok = lo is None or (value > lo if meta.get("lo_open") else value >= lo)
        high_ok = hi is None or (value < hi if meta.get("hi_open") else value <= hi)
        if not (low_ok and high_ok):
            raise bad(f"expected {_range_text(lo, hi, meta)}")
    return value


def _range_text(lo: Any, hi: Any, meta: Mapping) -> str:
    if hi is None:
        return f"a value {'>' if meta.get('lo_open') else '>='} {lo}"
    left = "(" if meta.get("lo_open") else "["
    right = ")" if meta.get("hi_open") else "]"
    return f"a value in {left}{lo}, {hi}{right}"


def _check_together(r: Recipe, o: Options) -> None:
    """Values that are impossible only in combination."""
    if (r.epochs is None) == (r.iterations is None):
        both = "both set" if r.epochs is not None else "neither set"
        raise ConfigError(
            f"epochs={r.epochs!r}, iterations={r.iterations!r}: {both}; set exactly one "
            "(--epochs E, or --set iterations=N --set epochs=none)"
        )
    if r.schedule == "step" and not r.milestones:
        raise ConfigError("schedule='step' needs milestones, e.g. --set milestones=30,60")
    if r.schedule == "step" and r.milestone_unit == "epoch" and r.epochs is not None:
        late = [m for m in r.milestones if m >= r.epochs]
        if late:
            raise ConfigError(
                f"milestones={list(r.milestones)}: {late[0]} is past the end of training "
                f"({r.epochs} epochs); valid: epochs 1..{r.epochs - 1}"
            )
    if r.augment == "none" and (r.crop_padding or r.alternate_flip):
        asked = f"crop_padding={r.crop_padding}" if r.crop_padding else "alternate_flip=true"
        raise ConfigError(
            f"{asked} is part of the standard augmentation, but augment='none' turns it off; "
            "valid: --set augment=standard with it, or leave it out"
        )
    check_val_every(o.val_every, o.early_stop, r.schedule)  # as fit checks it
    if r.schedule == "plateau" and o.val_split == 0:
        raise ConfigError(
            "schedule='plateau' watches the validation accuracy, but val_split=0 holds out "
            "none; give val_split > 0 or another schedule"
        )
    if r.min_lr >= r.effective_lr():
        raise ConfigError(
            f"min_lr={r.min_lr!r}: must be below the learning rate ({r.effective_lr():g})"
        )
    if r.nesterov and (r.optimizer != "sgd" or r.momentum == 0):
        raise ConfigError(
            f"nesterov=true needs optimizer='sgd' with momentum > 0 (optimizer={r.optimizer!r},"
            f" momentum={r.momentum!r})"
        )
    if r.batch_size < 1:  # pragma: no cover - checked per key
        raise ConfigError(f"batch_size={r.batch_size!r}: expected a value >= 1")
