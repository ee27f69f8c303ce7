"""The layer kinds of the compact notation that keep the shape: activations,
normalisations, dropout.  What a kind holds and says: :mod:`cnnlab.notation.layer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.notation._values import (
    FieldError,
    NoNotation,
    check_bool,
    check_float,
    check_int,
    settle,
    write_value,
)
from cnnlab.notation.layer import Layer, Option, Param

__all__ = ["ACTIVATIONS", "LRN", "Activation", "BatchNorm", "Dropout", "Identity"]


# Activation functions the notation knows; "stanh" is LeCun's 1.7159*tanh(2a/3).
ACTIVATIONS = ("relu", "tanh", "sigmoid", "stanh")


def _activation_modules() -> dict[str, type]:
    from torch import nn

    from cnnlab.layers import ScaledTanh

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "stanh": ScaledTanh}


@dataclass(frozen=True)
class Activation(Layer):
    """``relu``, ``tanh``, ``sigmoid``, ``stanh`` (LeCun's 1.7159*tanh(2a/3))."""

    words = (("relu",), ("tanh",), ("sigmoid",), ("stanh", "scaled_tanh", "scaledtanh"))

    fn: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fn not in ACTIVATIONS:
            raise FieldError(
                "fn", f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.fn!r}"
            )

    @classmethod
    def fixed_by_word(cls, word):
        return {"fn": word}

    def head(self) -> str:
        return self.fn

    def prefix(self) -> str:
        return self.fn

    def module(self, shape):
        return _activation_modules()[self.fn]()  # not in place: hooks keep the conv outputs

    @classmethod
    def read(cls, m, name):
        fn = next((f for f, t in _activation_modules().items() if type(m) is t), None)
        if fn == "stanh":
            lecun = type(m)()
            if (m.amplitude, m.slope) != (lecun.amplitude, lecun.slope):
                raise NoNotation("amplitude/slope other than LeCun's")
        return None if fn is None else cls(fn, name=name)


@dataclass(frozen=True)
class BatchNorm(Layer):
    """``bn``: batch normalisation (Ioffe & Szegedy 2015) over channels (or features)."""

    words = (("bn", "batchnorm", "batch_norm"),)
    word = "bn"
    options = (Option("eps", "float"), Option("momentum", "float"), Option("affine", "bool"))

    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "eps", check_float("eps", self.eps, 0.0, open_low=True))
        settle(self, "momentum", check_float("momentum", self.momentum, 0.0, 1.0))
        settle(self, "affine", check_bool("affine", self.affine))

    def infer(self, name, shape, hw):
        return shape, (2 * shape[0] if self.affine else 0), 0

    def module(self, shape):
        from torch import nn

        cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return cls(shape[0], eps=self.eps, momentum=self.momentum, affine=self.affine)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) not in (nn.BatchNorm1d, nn.BatchNorm2d):
            return None
        if not m.track_running_stats or m.momentum is None:
            raise NoNotation("track_running_stats=False or momentum=None")
        return cls(eps=m.eps, momentum=m.momentum, affine=m.affine, name=name)


@dataclass(frozen=True)
class LRN(Layer):
    """``lrn``: local response normalisation across maps with AlexNet's formula
    ``a / (k + alpha * sum a^2)^beta`` over ``size`` maps (alpha NOT divided by size)."""

    words = (("lrn", "norm"),)
    word = "lrn"
    options = (Option("size", "int"), Option("alpha", "float"), Option("beta", "float"),
               Option("k", "float"))  # fmt: skip
    needs_volume = True

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "size", check_int("size", self.size, 1))
        for key in ("alpha", "beta", "k"):
            settle(self, key, check_float(key, getattr(self, key), 0.0))

    def prefix(self) -> str:
        return "norm"  # Caffe's AlexNet: norm1, norm2

    def module(self, shape):
        from cnnlab.layers import LocalResponseNorm

        return LocalResponseNorm(self.size, self.alpha, self.beta, self.k)

    @classmethod
    def read(cls, m, name):
        from cnnlab.layers import LocalResponseNorm

        if type(m) is not LocalResponseNorm:
            return None
        return cls(size=m.size, alpha=m.alpha, beta=m.beta, k=m.k, name=name)


@dataclass(frozen=True)
class Dropout(Layer):
    """``dropout`` (p = 0.5), ``dropout-0.4``: zero each activation with probability p."""

    words = (("dropout", "drop"),)
    word = "dropout"
    param = Param("p", "dropout probability")
    options = (Option("p", "float"),)

    p: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "p", check_float("p", self.p, 0.0, 1.0, label="dropout probability"))

    def head(self) -> str:
        return "dropout" if self.p == self.default("p") else f"dropout-{write_value(self.p)}"

    def prefix(self) -> str:
        return "drop"

    def module(self, shape):
        from torch import nn

        return nn.Dropout(self.p)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        return cls(m.p, name=name) if type(m) is nn.Dropout else None


@dataclass(frozen=True)
class Identity(Layer):
    """``id``: passes its input on unchanged (the shortcut path of a residual block)."""

    words = (("id", "identity"),)
    word = "id"

    def module(self, shape):
        from torch import nn

        return nn.Identity()

    @classmethod
    def read(cls, m, name):
        from torch import nn

        return cls(name=name) if type(m) is nn.Identity else None
