"""Training recipes and the layered configuration of a run.

A :class:`Recipe` is a frozen, typed dataclass in human units (epochs, the global batch size,
the learning rate *and the batch size it refers to*, weight decay, schedule, augmentation,
label smoothing, dropout, initialisation).  :data:`RECIPES` holds the papers' recipes,
written as the papers give them where that is possible; every deviation is in the recipe's
``about`` text.  :class:`Options` holds what is not a property of the recipe (seed, device,
precision, threads, validation split).

:func:`resolve_config` layers, later winning: the recipe (named, or the model family's
default), a TOML file, ``key=value`` pairs (``--set``), then the dedicated flags.  Keys form
one flat namespace over both dataclasses (a TOML file may also group them in ``[recipe]`` and
``[options]`` tables, as a run's ``config.toml`` does).  Every value is type-checked; an
unknown key, a wrong type or an impossible value is one :class:`ConfigError` naming the key,
the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = [
    "ConfigError",
    "Options",
    "RECIPES",
    "Recipe",
    "default_recipe",
    "describe_keys",
    "resolve_config",
]


class ConfigError(CnnlabError):
    """A configuration key that is unknown, of the wrong type or impossible."""


def _key(default: Any, doc: str, **rules: Any) -> Any:
    """A dataclass field with its documentation and checks (``choices``, ``lo``, ``hi``,
    ``lo_open``, ``hi_open``) in its metadata."""
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class Recipe:
    """How to train: every hyperparameter, in human units (see the module doc)."""

    name: str = _key("custom", "the recipe's name")
    about: str = _key("", "what the paper used and what cnnlab uses instead, and why")
    model: str | None = _key(None, "the network the recipe brings (when TARGET is left out)")
    # ---- length ----
    epochs: int | None = _key(10, "passes over the training split", lo=1)
    iterations: int | None = _key(
        None, "optimizer steps instead of epochs (He et al.'s CIFAR schedule: 64000)", lo=1
    )
    # ---- mini-batch and optimizer ----
    batch_size: int = _key(128, "global mini-batch (split across ranks)", lo=1)
    lr: float = _key(0.1, "learning rate at lr_batch images per step", lo=0, lo_open=True)
    lr_batch: int | None = _key(
        None,
        "the batch size lr refers to; lr scales linearly to batch_size (None: no scaling)",
        lo=1,
    )
    optimizer: str = _key("sgd", "optimizer", choices=("sgd", "adam", "adamw"))
    momentum: float = _key(0.9, "SGD momentum", lo=0, hi=1, hi_open=True)
    nesterov: bool = _key(False, "Nesterov momentum (SGD)")
    betas: tuple[float, ...] = _key((0.9, 0.999), "Adam/AdamW betas", lo=0, hi=1, hi_open=True)
    weight_decay: float = _key(5e-4, "L2 weight decay (AdamW: decoupled)", lo=0)
    decay_norm_and_bias: bool = _key(
        True, "apply weight decay to BatchNorm weights and biases too (False: exclude them)"
    )
    # ---- learning-rate schedule ----
    schedule: str = _key(
        "constant",
        "constant | step (x gamma at milestones) | plateau (x gamma when validation top-1 "
        "stalls) | cosine | onecycle (linear warm-up, linear decay)",
        choices=("constant", "step", "plateau", "cosine", "onecycle"),
    )
    milestones: tuple[int, ...] = _key((), "step schedule: where lr is multiplied by gamma", lo=1)
    milestone_unit: str = _key("epoch", "unit of milestones", choices=("epoch", "iteration"))
    gamma: float = _key(0.1, "step/plateau factor", lo=0, hi=1, lo_open=True, hi_open=True)
    patience: int = _key(5, "plateau: epochs without a better validation top-1", lo=1)
    min_lr: float = _key(0.0, "floor of plateau; end of cosine and onecycle", lo=0)
    warmup: float = _key(
        0.0,
        "fraction of the steps with a linear warm-up (cosine, onecycle)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    # ---- loss and gradients ----
    label_smoothing: float = _key(0.0, "cross-entropy label smoothing", lo=0, hi=1, hi_open=True)
    aux_weight: float = _key(0.3, "weight of each auxiliary head's loss (GoogLeNet)", lo=0)
    grad_clip: float | None = _key(None, "clip the gradients' global L2 norm", lo=0, lo_open=True)
    # ---- data ----
    augment: str = _key(
        "none",
        "none | standard (random crop with zero padding + horizontal flip where it keeps the "
        "class)",
        choices=("none", "standard"),
    )
    crop_padding: int | None = _key(None, "standard augment: padding (None: dataset's)", lo=0)
    erase: float = _key(0.0, "random erasing probability", lo=0, hi=1)
    # ---- model ----
    dropout: float | None = _key(
        None,
        "dropout probability of the model's dropout layers (None: the model's own)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    init: str = _key(
        "default",
        "default (the builder's) | he | glorot | lenet (uniform +-2.4/fan-in)",
        choices=("default", "he", "glorot", "lenet"),
    )

    def effective_lr(self) -> float:
        """``lr`` scaled linearly to ``batch_size`` (Goyal et al. 2017) when ``lr_batch``
        is set; the peak learning rate of the run."""
        return self.lr * self.batch_size / self.lr_batch if self.lr_batch else self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Options:
    """What a run needs beside its recipe."""

    seed: int = _key(0, "seed of initialisation, order, augmentation and dropout", lo=0)
    val_split: float = _key(
        0.1,
        "fraction of the training split held out (stratified, fixed seed) for validation",
        lo=0,
        hi=1,
        hi_open=True,
    )
    device: str = _key(
        "auto", "auto (CUDA when present) | cpu | cuda", choices=("auto", "cpu", "cuda")
    )
    precision: str = _key(
        "auto",
        "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16",
        choices=("auto", "fp32", "bf16"),
    )
    channels_last: bool | None = _key(None, "channels_last memory format (None: on CUDA)")
    threads: int | None = _key(None, "CPU threads (None: the cores this process may use)", lo=1)
    eval_test_every_epoch: bool = _key(
        False, "evaluate the test split after every epoch too (marked in the logs)"
    )
    eval_batch_size: int = _key(1000, "batch size of evaluation", lo=1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        "schedule, label smoothing 0.2 and BatchNorm/bias parameters without weight decay, "
        "after the fast CIFAR-10 training records (Page 2018; Jordan 2024, airbench)."
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


# ---- layering and checking ---------------------------------------------------------------------
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
            rows.append((name, _type_name(_HINTS[cls][name]), repr(f.default), f.metadata["doc"]))
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


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return f"list of {_type_name(args[0])}"
    return "none" if hint is type(None) else hint.__name__


def _parse_text(key: str, text: str, where: str) -> Any:
    """A ``--set`` value, read as the key's type."""
    if key not in _OWNER:
        raise ConfigError(where + _unknown("key", key, list(_OWNER)))
    hint = _HINTS[_OWNER[key]][key]
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if optional and text.lower() in ("none", "null", ""):
        return None
    if typing.get_origin(base) is tuple:
        inner = typing.get_args(base)[0]
        parts = [p.strip() for p in text.strip("[]()").split(",") if p.strip()]
        return tuple(_parse_scalar(key, p, inner, where, hint) for p in parts)
    return _parse_scalar(key, text, base, where, hint)


def _parse_scalar(key: str, text: str, typ: type, where: str, hint: Any) -> Any:
    try:
        if typ is bool:
            low = text.lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if typ is int:
            return int(text.replace("_", ""))
        if typ is float:
            return float(text)
    except ValueError:
        raise ConfigError(
            f"{where}{key}={text!r}: expected "
            + ("true or false" if typ is bool else _type_name(hint))
        ) from None
    return text


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
        raise bad(f"expected {_type_name(hint)}, not none")
    if typing.get_origin(base) is tuple:
        if not isinstance(value, list | tuple):
            raise bad(f"expected {_type_name(hint)}")
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
            raise bad(f"expected {_type_name(hint)}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"expected a number ({_type_name(hint)})")
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
