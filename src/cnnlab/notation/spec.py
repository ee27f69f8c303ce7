"""The intermediate form of the compact notation: a network as a flat tuple of layers.

Pure Python (no torch).  The parser produces it, every family of the zoo is written in it
(through the parser), :mod:`cnnlab.notation.build` turns it into an
``nn.Module`` and :mod:`cnnlab.notation.formatter` reads a module built from it back.  The
layer kinds are in :mod:`cnnlab.notation.kinds`, the naming rule in
:mod:`cnnlab.notation._naming`.

Canonical form
    Every layer is resolved (see :mod:`~cnnlab.notation.kinds`); repetition (``(...)*3``) is
    expanded; a :class:`~cnnlab.notation.kinds.Flatten` is inserted before the first fully
    connected layer that reads a spatial volume; an explicit name is kept only where the
    naming rule would name the layer otherwise.  Two spellings of the same layers therefore
    compare equal, which is what makes ``format(parse(s))`` a fixed point.

Shapes
    :meth:`Spec.infer` follows a ``(C, H, W)`` volume through the layers with
    :mod:`cnnlab.geometry` (PyTorch's rounding); after ``flatten``/``fc`` the shape is
    ``(features,)``.  It also counts parameters and multiply-adds (conv + linear MACs:
    ``H_out*W_out*C_out*(C_in/groups)*kh*kw`` and ``in*out``; biases, BN, pooling excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cnnlab import geometry
from cnnlab.errors import SpecError
from cnnlab.notation._fold import fold
from cnnlab.notation._naming import assign_names, canonical_names
from cnnlab.notation._values import MAX_INT, check_int, settle
from cnnlab.notation.kinds import FC, BatchNorm, Conv, Flatten, Layer, Softmax
from cnnlab.notation.layer import cells_through

__all__ = ["Spec", "Step", "smallest_input"]


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


def _caret(text: str, pos: int | None) -> str:
    """The lines SpecError shows (text and caret), for errors of other types."""
    if not text or pos is None:
        return ""
    return "\n" + str(SpecError("", text, pos)).lstrip("\n")


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
    # infer()'s steps per (in_channels, (H, W)): a spec is immutable, and building a network
    # and analysing it (cnnlab.analysis.analyze_spec) follow the same input through it.
    _inferred: dict = field(default_factory=dict, init=False, compare=False, repr=False)

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
            if layer.needs_volume and not spatial:
                raise SpecError(
                    f"{layer.text(False)} needs a C x H x W volume, but after "
                    f"flatten/fc the data is a flat vector",
                    self.text,
                    layer.pos,
                )
            if layer.reads_vector and spatial:
                normal.append(Flatten(pos=layer.pos))
            if layer.flattens:
                spatial = False
            normal.append(layer)
        if not any(not isinstance(layer, Softmax) for layer in normal):
            raise SpecError("a spec needs at least one layer (conv, fc, ...)", self.text, 0)
        names = assign_names(tuple(normal), self.text)
        normal, names = canonical_names(normal, names, self.text)
        settle(self, "layers", tuple(normal))
        settle(self, "_names", names)

    # -- views -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __str__(self) -> str:
        return self.canonical()

    def __repr__(self) -> str:
        return f"Spec({str(self)!r})"

    def names(self) -> tuple[str | None, ...]:
        """Module name of each layer (None for the softmax marker)."""
        return self._names

    def canonical(self, compact: bool = True) -> str:
        """The canonical text (see :func:`~cnnlab.notation.formatter.format_spec`)."""
        tokens = []
        layers = self.layers
        for i, layer in enumerate(layers):
            implicit = (  # the parser puts this flatten back by itself
                type(layer) is Flatten
                and layer.name is None
                and i + 1 < len(layers)
                and layers[i + 1].reads_vector
            )
            if not implicit and not isinstance(layer, Softmax):
                tokens.append(layer.text())
        return fold(tokens, compact) + (",softmax" if self.ends_with_softmax else "")

    @property
    def ends_with_softmax(self) -> bool:
        return isinstance(self.layers[-1], Softmax)

    # -- transformations ---------------------------------------------------------------

    def with_num_classes(self, num_classes: int) -> Spec:
        """The same network with the last fc's width replaced (the classifier)."""
        num_classes = check_int("num_classes", num_classes, 1)
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
        known = self._inferred.get((in_channels, hw))
        if known is not None:
            return known
        steps = []
        shape: tuple[int | None, ...] = (in_channels, *hw)
        for name, layer in zip(self._names, self.layers, strict=True):
            out, params, macs = self._step(name, layer, shape)
            steps.append(Step(name, layer, shape, out, params, macs))
            shape = out
        self._inferred[(in_channels, hw)] = known = tuple(steps)
        return known

    def output_shape(self, in_channels: int = 3, input_size=None) -> tuple[int | None, ...]:
        """Shape of one example's output (without the batch dimension)."""
        return self.infer(in_channels, input_size)[-1].output

    def num_params(self, in_channels: int = 3, input_size=None) -> int:
        """Trainable parameters, counted from the hyperparameters (no torch)."""
        return sum(step.params for step in self.infer(in_channels, input_size))

    def _step(self, name, layer, shape):
        hw = self._sizes(name, layer, shape[1:]) if layer.windowed else ()
        try:
            return layer.infer(name, shape, hw)
        except SpecError as exc:  # the kind's own reason; point at the layer in the text
            if exc.pos is not None and exc.text:  # a layer inside a branch: its own caret
                raise
            raise SpecError(exc.reason, self.text, layer.pos) from None

    def _sizes(self, name, layer, hw):
        """Output (H, W) of a conv or pool, or the one vanishing message with the smallest
        input that gets through and a caret under the layer."""
        if hw[0] is None:
            return (None, None)
        windows, ceil = layer.windows(), layer.rounds_up()
        try:
            try:  # the layer's name for the message (its canonical text) only when it vanishes
                return geometry.window_output(hw, windows, "", ceil)
            except geometry.VanishingVolume:
                return geometry.window_output(hw, windows, layer.where(name), ceil)
        except geometry.VanishingVolume as v:
            raise v.needs(
                "the network",
                smallest_input(self.layers, v.axis),
                tail=_caret(self.text, layer.pos),
                otherwise="no input size gets through: after gap the map is 1x1",
            ) from None


def smallest_input(layers: Sequence[Layer], axis: int) -> int | None:
    """The smallest input extent along spatial ``axis`` that leaves every window of
    ``layers`` (in order) at least one cell, or None if none does
    (:func:`cnnlab.geometry.smallest_input` over the layers' :meth:`~Layer.cells`)."""

    return geometry.smallest_input(lambda n: cells_through(layers, axis, n) >= 1)


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
