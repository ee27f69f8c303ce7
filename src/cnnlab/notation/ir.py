"""The intermediate form of the compact notation: a network as a flat tuple of layers.

Pure Python (no torch).  The parser produces it, the VGG zoo is written in it (through the
parser), :mod:`cnnlab.notation.build` turns it into an ``nn.Module`` and
:mod:`cnnlab.notation.formatter` turns it (or a module built from it) back into text.

Canonical form
    Every layer is a frozen dataclass whose fields are *resolved* hyperparameters: a conv
    written ``conv3-64`` stores ``padding=(1, 1)``, not "same"; pairs are always
    ``(height, width)`` tuples.  Repetition (``(...)*3``) is expanded.  A
    :class:`Flatten` is inserted before the first fully connected layer that reads a spatial
    volume.  An explicit name is kept only where the naming rule would name the layer
    otherwise.  Two spellings of the same layers therefore compare equal, which is what makes
    ``format(parse(s))`` a fixed point.

Layer names (they are API: they become ``state_dict`` keys)
    Caffe's VGG convention, made a rule.  The network is cut into *stages*, each ended by a
    pooling layer (``maxpool``, ``avgpool``, ``gap``):

    - the i-th conv of stage s is ``conv{s}_{i}``; the pooling layer that ends stage s is
      ``pool{s}``;
    - fully connected layers continue the stage count: after VGG's five pools the first is
      ``fc6``, then ``fc7``, ``fc8``.  (An fc that follows convs with no pool in between closes
      their stage first.)
    - every other layer takes the suffix of the latest conv, pool or fc before it, with its
      own prefix: ``relu1_1``, ``bn1_1``, ``norm1_1`` (LRN) after ``conv1_1``; ``norm1``
      after ``pool1`` (Caffe's AlexNet); ``relu6``, ``drop6`` after ``fc6``; before any of
      them the suffix is ``0`` (``bn0`` normalising the input); ``flatten`` is ``flatten``;
    - a name already taken gets a letter: ``relu1_1b``, ``relu1_1c`` ... (after ``z``:
      ``relu1_1_27``...);
    - a layer may carry an explicit ``name=`` instead (it reserves that name; the rule still
      counts the layer).

    So VGG-16 is ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5, flatten, fc6,
    relu6, drop6, fc7, relu7, drop7, fc8``, the names of the VGG team's Caffe models.

Shapes
    :meth:`Spec.infer` follows a ``(C, H, W)`` volume through the layers with
    :mod:`cnnlab.geometry` (PyTorch's rounding); after ``flatten``/``fc`` the shape is
    ``(features,)``.  It also counts parameters and multiply-adds (conv + linear MACs:
    ``H_out*W_out*C_out*(C_in/groups)*kh*kw`` and ``in*out``; biases, BN, pooling excluded).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from cnnlab import geometry
from cnnlab.errors import GeometryError, SpecError

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BatchNorm",
    "Conv",
    "Dropout",
    "FC",
    "Flatten",
    "GlobalAvgPool",
    "LRN",
    "Layer",
    "Pool",
    "Softmax",
    "Spec",
    "Step",
    "layer_text",
]

Pair = tuple[int, int]

# Activation functions the notation knows; "stanh" is LeCun's 1.7159*tanh(2a/3).
ACTIVATIONS = ("relu", "tanh", "sigmoid", "stanh")

# Bounds that keep a typo from allocating the machine away; far beyond any real network.
MAX_INT = 1 << 24


# --------------------------------------------------------------------------- validation


def _pair(name: str, value: object, low: int) -> Pair:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(not isinstance(v, int) or isinstance(v, bool) for v in value)
    ):
        raise SpecError(f"{name} must be a whole number or a pair AxB, got {value!r}")
    for v in value:
        if not low <= v <= MAX_INT:
            raise SpecError(f"{name} must be between {low} and {MAX_INT}, got {v}")
    return value  # type: ignore[return-value]


def _int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= MAX_INT:
        raise SpecError(f"{name} must be between {low} and {MAX_INT}, got {value}")
    return value


def _float(name: str, value: object, low: float, high: float = math.inf, open_low=False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        if high != math.inf:
            bound += f" and <= {high:g}"
        raise SpecError(f"{name} must be {bound}, got {value!r}")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be true or false, got {value!r}")
    return value


def _windows(kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil: bool = False):
    return tuple(
        geometry.Window(k, s, p, d, ceil)
        for k, s, p, d in zip(kernel, stride, padding, dilation, strict=True)
    )


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Layer:
    """Base of the layer nodes.  ``name``: an explicit module name (None: the naming rule).
    ``pos``: character offset in the source text, for error carets (not part of equality)."""

    word: ClassVar[str] = ""
    name: str | None = field(default=None, kw_only=True)
    pos: int | None = field(default=None, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.name is not None and (
            not isinstance(self.name, str)
            or not self.name
            or not all(c.isascii() and (c.isalnum() or c == "_") for c in self.name)
        ):
            raise SpecError(
                f"a layer name must be letters, digits and '_' (it becomes a state_dict key), "
                f"got {self.name!r}"
            )


@dataclass(frozen=True)
class Conv(Layer):
    """``conv3-64``: 2-D convolution, ``out`` filters of ``kernel`` (kh, kw).

    ``padding=None`` means the lecture's usual "same" padding ``(F-1)/2`` per axis (for the
    effective, dilated kernel); an even kernel has none and needs an explicit padding.
    """

    word: ClassVar[str] = "conv"
    kernel: Pair
    out: int
    stride: Pair = (1, 1)
    padding: Pair | None = None
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "kernel", _pair("kernel", self.kernel, 1))
        _set(self, "out", _int("width (filters)", self.out, 1))
        _set(self, "stride", _pair("stride", self.stride, 1))
        _set(self, "dilation", _pair("dilation", self.dilation, 1))
        _set(self, "groups", _int("groups", self.groups, 1))
        _set(self, "bias", _bool("bias", self.bias))
        if self.padding is None:
            _set(self, "padding", self.same_padding())
            if self.padding is None:
                kh, kw = self.kernel
                raise SpecError(
                    f"a {kh}x{kw} kernel has no symmetric 'same' padding (F-1)/2 "
                    f"(an even window needs one more cell on one side); give it, e.g. pad=0"
                )
        _set(self, "padding", _pair("padding", self.padding, 0))
        if self.out % self.groups:
            raise SpecError(f"groups={self.groups} must divide the {self.out} filters")

    def windows(self) -> tuple[geometry.Window, geometry.Window]:
        """The convolution's window along height and width."""
        return _windows(self.kernel, self.stride, self.padding, self.dilation)  # type: ignore[arg-type]

    def same_padding(self) -> Pair | None:
        """``(F-1)/2`` per axis for the dilated kernel, or None if an axis is even."""
        try:
            return tuple(  # type: ignore[return-value]
                geometry.same_padding(k, d) for k, d in zip(self.kernel, self.dilation, strict=True)
            )
        except GeometryError:
            return None


@dataclass(frozen=True)
class Pool(Layer):
    """``maxpool`` (2x2/2), ``maxpool3/2``, ``avgpool7/1``: max or average pooling.

    ``stride=None`` means ``stride = kernel`` (PyTorch's default: windows do not overlap).
    """

    word: ClassVar[str] = "pool"
    op: str = "max"  # "max" or "avg"
    kernel: Pair = (2, 2)
    stride: Pair | None = None
    padding: Pair = (0, 0)
    ceil: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.op not in ("max", "avg"):
            raise SpecError(f"pooling op must be 'max' or 'avg', got {self.op!r}")
        _set(self, "kernel", _pair("kernel", self.kernel, 1))
        _set(
            self, "stride", _pair("stride", self.kernel if self.stride is None else self.stride, 1)
        )
        _set(self, "padding", _pair("padding", self.padding, 0))
        _set(self, "ceil", _bool("ceil", self.ceil))
        for p, k in zip(self.padding, self.kernel, strict=True):
            if 2 * p > k:  # PyTorch's rule: a window must not lie wholly in the padding
                raise SpecError(
                    f"pooling padding {p} is more than half of the {k}-cell window; "
                    f"use at most {k // 2}"
                )

    def windows(self) -> tuple[geometry.Window, geometry.Window]:
        """The pooling window along height and width."""
        return _windows(self.kernel, self.stride, self.padding, (1, 1), self.ceil)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """``gap``: average over the whole map, ``C x H x W -> C x 1 x 1`` (Lin et al. 2014)."""

    word: ClassVar[str] = "gap"


@dataclass(frozen=True)
class Activation(Layer):
    """``relu``, ``tanh``, ``sigmoid``, ``stanh`` (LeCun's 1.7159*tanh(2a/3))."""

    fn: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fn not in ACTIVATIONS:
            raise SpecError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.fn!r}")


@dataclass(frozen=True)
class BatchNorm(Layer):
    """``bn``: batch normalisation (Ioffe & Szegedy 2015) over channels (or features)."""

    word: ClassVar[str] = "bn"
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "eps", _float("eps", self.eps, 0.0, open_low=True))
        _set(self, "momentum", _float("momentum", self.momentum, 0.0, 1.0))
        _set(self, "affine", _bool("affine", self.affine))


@dataclass(frozen=True)
class LRN(Layer):
    """``lrn``: local response normalisation across maps with AlexNet's formula
    ``a / (k + alpha * sum a^2)^beta`` over ``size`` maps (alpha NOT divided by size)."""

    word: ClassVar[str] = "lrn"
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "size", _int("size", self.size, 1))
        _set(self, "alpha", _float("alpha", self.alpha, 0.0))
        _set(self, "beta", _float("beta", self.beta, 0.0))
        _set(self, "k", _float("k", self.k, 0.0))


@dataclass(frozen=True)
class Dropout(Layer):
    """``dropout`` (p = 0.5), ``dropout-0.4``: zero each activation with probability p."""

    word: ClassVar[str] = "dropout"
    p: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "p", _float("dropout probability", self.p, 0.0, 1.0))


@dataclass(frozen=True)
class Flatten(Layer):
    """``flatten``: ``C x H x W -> C*H*W``; implicit before the first fc on a spatial volume."""

    word: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class FC(Layer):
    """``fc-4096``: fully connected (linear) layer with ``out`` outputs."""

    word: ClassVar[str] = "fc"
    out: int
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "out", _int("width (outputs)", self.out, 1))
        _set(self, "bias", _bool("bias", self.bias))


@dataclass(frozen=True)
class Softmax(Layer):
    """``softmax``: a marker that the network ends in class scores.  The built model returns
    logits (the cross-entropy loss applies softmax); the marker is kept so text round-trips."""

    word: ClassVar[str] = "softmax"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name is not None:
            raise SpecError("softmax is a marker, not a module: it takes no name")


_SPATIAL_ONLY = (Conv, Pool, GlobalAvgPool, LRN, Flatten)


# --------------------------------------------------------------------------- text of one layer


def _pair_text(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _num(v: float) -> str:
    return repr(float(v))


def layer_text(layer: Layer, with_name: bool = True) -> str:
    """The canonical notation of one layer: defaults left out, options in a fixed order."""
    opts: list[str] = []
    if isinstance(layer, Conv):
        head = f"conv{_pair_text(layer.kernel)}"
        if layer.stride != (1, 1):
            head += f"/{_pair_text(layer.stride)}"
        head += f"-{layer.out}"
        if layer.padding != layer.same_padding():
            opts.append(f"pad={_pair_text(layer.padding)}")  # type: ignore[arg-type]
        if layer.dilation != (1, 1):
            opts.append(f"dilation={_pair_text(layer.dilation)}")
        if layer.groups != 1:
            opts.append(f"groups={layer.groups}")
        if not layer.bias:
            opts.append("bias=false")
    elif isinstance(layer, Pool):
        head = f"{layer.op}pool"
        if layer.kernel != (2, 2) or layer.stride != (2, 2):
            head += f"{_pair_text(layer.kernel)}/{_pair_text(layer.stride)}"  # type: ignore[arg-type]
        if layer.padding != (0, 0):
            opts.append(f"pad={_pair_text(layer.padding)}")
        if layer.ceil:
            opts.append("ceil=true")
    elif isinstance(layer, Activation):
        head = layer.fn
    elif isinstance(layer, BatchNorm):
        head = "bn"
        if layer.eps != 1e-5:
            opts.append(f"eps={_num(layer.eps)}")
        if layer.momentum != 0.1:
            opts.append(f"momentum={_num(layer.momentum)}")
        if not layer.affine:
            opts.append("affine=false")
    elif isinstance(layer, LRN):
        head = "lrn"
        for key, default in (("size", 5), ("alpha", 1e-4), ("beta", 0.75), ("k", 2.0)):
            value = getattr(layer, key)
            if value != default:
                opts.append(f"{key}={value if key == 'size' else _num(value)}")
    elif isinstance(layer, Dropout):
        head = "dropout" if layer.p == 0.5 else f"dropout-{_num(layer.p)}"
    elif isinstance(layer, FC):
        head = f"fc-{layer.out}"
        if not layer.bias:
            opts.append("bias=false")
    elif isinstance(layer, GlobalAvgPool | Flatten | Softmax):
        head = layer.word
    else:
        raise TypeError(f"not a spec layer: {layer!r}")
    if with_name and layer.name is not None:
        opts.append(f"name={layer.name}")
    return head + (f"({','.join(opts)})" if opts else "")


# --------------------------------------------------------------------------- naming


_PREFIX = {
    BatchNorm: "bn",
    LRN: "norm",
    Dropout: "drop",
}


def _rule_names(layers: tuple[Layer, ...]) -> list[str | None]:
    """The naming rule of the module docstring, before explicit names and collisions."""
    names: list[str | None] = []
    stage, conv_i, suffix = 1, 0, "0"
    for layer in layers:
        if isinstance(layer, Conv):
            conv_i += 1
            suffix = f"{stage}_{conv_i}"
            names.append(f"conv{suffix}")
        elif isinstance(layer, Pool | GlobalAvgPool):
            names.append(f"pool{stage}")
            stage, conv_i, suffix = stage + 1, 0, str(stage)
        elif isinstance(layer, FC):
            if conv_i:  # convs with no pool after them: the fc starts a new stage
                stage, conv_i = stage + 1, 0
            suffix = str(stage)
            names.append(f"fc{stage}")
            stage += 1
        elif isinstance(layer, Flatten):
            names.append("flatten")
        elif isinstance(layer, Softmax):
            names.append(None)
        else:
            prefix = layer.fn if isinstance(layer, Activation) else _PREFIX[type(layer)]
            names.append(f"{prefix}{suffix}")
    return names


def _letters(i: int) -> str:
    return chr(ord("a") + i) if i < 26 else f"_{i + 1}"


def _assign_names(layers: tuple[Layer, ...], text: str) -> tuple[str | None, ...]:
    used: dict[str, Layer] = {}
    for layer in layers:
        if layer.name is not None:
            if layer.name in used:
                raise SpecError(f"the name {layer.name!r} is used twice", text, layer.pos)
            used[layer.name] = layer
    result: list[str | None] = []
    tried: dict[str, int] = {}  # base -> suffix index to try next (earlier ones are taken)
    for layer, base in zip(layers, _rule_names(layers), strict=True):
        if layer.name is not None or base is None:
            result.append(layer.name)
            continue
        i = tried.get(base, 0)
        name = base if i == 0 else base + _letters(i)
        while name in used:
            i += 1
            name = base + _letters(i)
        tried[base] = i + 1
        used[name] = layer
        result.append(name)
    return tuple(result)


def _drop_redundant_names(layers: list[Layer], names: tuple, text: str):
    """Canonical form: keep exactly the explicit names the assignment needs.

    The result depends only on the layers and their final names, not on which names the
    input spelled out: start from every layer named explicitly and, left to right, drop each
    name whose removal leaves every layer's name unchanged.  (So ``conv3-8(name=conv1_1)``
    equals ``conv3-8``, and a model read back module by module equals the spec it was built
    from.)
    """
    bare = [
        layer if layer.name is None else dataclasses.replace(layer, name=None) for layer in layers
    ]
    if _assign_names(tuple(bare), text) == names:  # the usual case: the rule names them all
        return bare, names
    rule = _rule_names(tuple(layers))
    current = [
        layer if n is None or layer.name == n else dataclasses.replace(layer, name=n)
        for layer, n in zip(layers, names, strict=True)
    ]
    for i, name in enumerate(names):
        # Only a name the rule could produce for this layer (its base, or base + letter)
        # can possibly be dropped; checking that first keeps a long plain Sequential fast.
        if name is None or not _from_rule(name, rule[i]):
            continue
        trial = list(current)
        trial[i] = dataclasses.replace(trial[i], name=None)
        if _assign_names(tuple(trial), text) == names:
            current = trial
    return current, names


def _from_rule(name: str, base: str | None) -> bool:
    if base is None or not name.startswith(base):
        return False
    rest = name[len(base) :]
    return (
        rest == ""
        or (len(rest) == 1 and rest.isalpha())
        or (rest.startswith("_") and rest[1:].isdigit())
    )


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Step:
    """One layer of a network with known input: its module name, shapes, parameters, MACs.

    Shapes are ``(C, H, W)`` for volumes (H, W are None when the input size was not given)
    and ``(features,)`` after flatten/fc.  ``macs`` is None when it depends on an unknown
    size.  ``name`` is None only for the softmax marker (which builds no module).
    """

    name: str | None
    layer: Layer
    input: tuple[int | None, ...]
    output: tuple[int | None, ...]
    params: int
    macs: int | None


def _where(name: str | None, layer: Layer) -> str:
    return f"{name} ({layer_text(layer, with_name=False)})"


def _caret(text: str, pos: int | None) -> str:
    """The lines SpecError shows (text and caret), for errors of other types."""
    if not text or pos is None:
        return ""
    return "\n" + str(SpecError("", text, pos)).lstrip("\n")


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Spec:
    """A network in the intermediate form: a flat tuple of layers (see the module docstring).

    Construct it with :func:`cnnlab.parse_spec` (from text) or directly from layers; either
    way it is normalised (flatten inserted before the first fc that reads a volume) and
    checked (layers that need a volume do not follow a flat vector; softmax comes last;
    names are unique).  ``text`` is the source, kept for error carets; it is not part of
    equality.
    """

    layers: tuple[Layer, ...]
    text: str = field(default="", compare=False, repr=False)
    _names: tuple[str | None, ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers) if not isinstance(self.layers, tuple) else self.layers
        for layer in layers:
            if not isinstance(layer, Layer) or type(layer) is Layer:
                raise SpecError(f"a Spec holds layer nodes (Conv, FC, ...), got {layer!r}")
        normal: list[Layer] = []
        spatial = True  # the input is an image volume until flatten/fc
        for i, layer in enumerate(layers):
            if isinstance(layer, Softmax) and i != len(layers) - 1:
                raise SpecError(
                    "softmax marks the end of the network (the built model returns logits and "
                    "the loss applies softmax), so it must come last",
                    self.text,
                    layer.pos,
                )
            if isinstance(layer, _SPATIAL_ONLY) and not spatial:
                raise SpecError(
                    f"{layer_text(layer, False)} needs a C x H x W volume, but after "
                    f"flatten/fc the data is a flat vector",
                    self.text,
                    layer.pos,
                )
            if isinstance(layer, FC) and spatial:
                normal.append(Flatten(pos=layer.pos))
            if isinstance(layer, FC | Flatten):
                spatial = False
            normal.append(layer)
        if not any(not isinstance(layer, Softmax) for layer in normal):
            raise SpecError("a spec needs at least one layer (conv, fc, ...)", self.text, 0)
        names = _assign_names(tuple(normal), self.text)
        normal, names = _drop_redundant_names(normal, names, self.text)
        _set(self, "layers", tuple(normal))
        _set(self, "_names", names)

    # -- views -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __str__(self) -> str:
        from cnnlab.notation.formatter import format_spec

        return format_spec(self)

    def __repr__(self) -> str:
        return f"Spec({str(self)!r})"

    def names(self) -> tuple[str | None, ...]:
        """Module name of each layer (None for the softmax marker)."""
        return self._names

    @property
    def ends_with_softmax(self) -> bool:
        return isinstance(self.layers[-1], Softmax)

    # -- transformations ---------------------------------------------------------------

    def with_num_classes(self, num_classes: int) -> Spec:
        """The same network with the last fc's width replaced (the classifier)."""
        num_classes = _int("num_classes", num_classes, 1)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if isinstance(layer, FC):
                new = FC(num_classes, bias=layer.bias, name=layer.name, pos=layer.pos)
                return Spec(self.layers[:i] + (new,) + self.layers[i + 1 :], self.text)
        raise SpecError("num_classes replaces the width of the last fc, but this spec has no fc")

    def with_batchnorm(self, **options) -> Spec:
        """Batch normalisation after every conv (conv -> bn -> activation), as torchvision's
        ``vgg*_bn``; convs keep their bias.  ``options``: BatchNorm fields (eps, momentum)."""
        layers: list[Layer] = []
        for layer in self.layers:
            layers.append(layer)
            if isinstance(layer, Conv):
                layers.append(BatchNorm(**options, pos=layer.pos))
        return Spec(tuple(layers), self.text)

    # -- shapes, parameters, MACs --------------------------------------------------------

    def infer(
        self, in_channels: int = 3, input_size: int | tuple[int, int] | None = None
    ) -> tuple[Step, ...]:
        """Follow an ``in_channels x H x W`` input through the layers (pure integer math).

        ``input_size``: ``(H, W)``, an int for a square input, or None (spatial sizes unknown:
        fine for fully convolutional specs or ones with ``gap`` before the fc).  Raises
        :class:`GeometryError` naming the layer where the volume vanishes (and the smallest
        input that gets through), :class:`SpecError` for channel mismatches or an fc whose
        input size cannot be known.
        """
        in_channels = _checked_channels(in_channels)
        hw = _checked_size(input_size)
        steps = []
        shape: tuple[int | None, ...] = (in_channels, *hw)
        for name, layer in zip(self._names, self.layers, strict=True):
            out, params, macs = self._step(name, layer, shape)
            steps.append(Step(name, layer, shape, out, params, macs))
            shape = out
        return tuple(steps)

    def output_shape(self, in_channels: int = 3, input_size=None) -> tuple[int | None, ...]:
        """Shape of one example's output (without the batch dimension)."""
        return self.infer(in_channels, input_size)[-1].output

    def num_params(self, in_channels: int = 3, input_size=None) -> int:
        """Trainable parameters, counted from the hyperparameters (no torch)."""
        return sum(step.params for step in self.infer(in_channels, input_size))

    def _step(self, name, layer, shape):
        if isinstance(layer, Conv):
            c, h, w = shape
            if c % layer.groups:
                raise SpecError(
                    f"{_where(name, layer)}: groups={layer.groups} must divide its {c} input "
                    f"channels",
                    self.text,
                    layer.pos,
                )
            fan_in = (c // layer.groups) * layer.kernel[0] * layer.kernel[1]
            sizes = self._sizes(name, layer, (h, w))
            params = layer.out * fan_in + (layer.out if layer.bias else 0)
            macs = None if sizes[0] is None else sizes[0] * sizes[1] * layer.out * fan_in
            return (layer.out, *sizes), params, macs
        if isinstance(layer, Pool):
            c, h, w = shape
            sizes = self._sizes(name, layer, (h, w))
            return (c, *sizes), 0, 0
        if isinstance(layer, GlobalAvgPool):
            return (shape[0], 1, 1), 0, 0
        if isinstance(layer, Flatten):
            c, h, w = shape
            if h is None:
                reader = "flatten" if layer.name else "the fc after the convolutions"
                raise SpecError(
                    f"{name}: {reader} needs the size of the volume, which depends on the "
                    f"input size: pass input_size=(H, W) (or end the convolutions with gap)",
                    self.text,
                    layer.pos,
                )
            return (c * h * w,), 0, 0
        if isinstance(layer, FC):
            (n,) = shape
            params = n * layer.out + (layer.out if layer.bias else 0)
            return (layer.out,), params, n * layer.out
        if isinstance(layer, BatchNorm):
            return shape, (2 * shape[0] if layer.affine else 0), 0
        return shape, 0, 0  # activations, LRN, dropout, softmax keep the shape

    def _sizes(self, name, layer, hw):
        """Output (H, W) of a conv or pool, or the one vanishing message with the smallest
        input that gets through and a caret under the layer."""
        if hw[0] is None:
            return (None, None)
        try:
            return geometry.window_output(hw, layer.windows(), _where(name, layer))
        except geometry.VanishingVolume as v:
            axis = v.axis
            need = geometry.smallest_input(lambda n: self._gets_through(axis, n))
            advice = (
                f"the network needs an input of at least {need} {v.unit}"
                if need is not None
                else "no input size gets through: after gap the map is 1x1"
            )
            raise v.explained(advice, tail=_caret(self.text, layer.pos)) from None

    def _gets_through(self, axis: int, n: int) -> bool:
        """Whether an input ``n`` cells long along ``axis`` leaves every window a cell."""
        for layer in self.layers:
            if isinstance(layer, GlobalAvgPool):
                n = 1
            elif isinstance(layer, Conv | Pool):
                n = layer.windows()[axis].output(n)
                if n < 1:
                    return False
        return True


def _checked_channels(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INT:
        raise SpecError(f"in_channels must be a positive whole number, got {value!r}")
    return value


def _checked_size(value: object) -> tuple[int | None, int | None]:
    if value is None:
        return (None, None)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or any(
            not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_INT for v in value
        )
    ):
        raise SpecError(
            f"input_size must be a positive whole number or a pair (H, W) of them, got {value!r}"
        )
    return (value[0], value[1])
