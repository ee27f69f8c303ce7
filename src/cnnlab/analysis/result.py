"""The plain data an analysis returns: rows (one per module call or functional op) and totals.

Everything here is plain Python (ints, strings, tuples, dicts): renderers and tests read it,
``to_dict()`` gives JSON-ready dictionaries.  Sizes are per batch unless a name says
``per_image``; bytes use the analysis dtype for activations and each parameter's own dtype for
parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from cnnlab.geometry import Window

__all__ = [
    "INPUT",
    "Analysis",
    "Kind",
    "Layer",
    "RField",
    "Row",
    "RowKey",
    "Totals",
    "TrainingMemory",
]


class Kind(StrEnum):
    """What a layer is, as its counting rule knows it (never read from a class name).

    Renderers choose and label rows by kind: the lecture's table lists convolutions, pools,
    normalizations, fully connected layers and whole blocks.
    """

    CONV = "conv"
    CONV_TRANSPOSE = "conv_transpose"
    LINEAR = "linear"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"
    ADAPTIVE_MAX_POOL = "adaptive_max_pool"
    ADAPTIVE_AVG_POOL = "adaptive_avg_pool"
    LRN = "lrn"  # local response normalization
    SUBSAMPLE = "subsample"  # LeNet-5's trainable subsampling
    BLOCK = "block"  # a block the lecture lists as one row (inception, residual)


@dataclass(frozen=True)
class Layer:
    """A row's layer, typed: its kind and hyperparameters, one :class:`~cnnlab.geometry.Window`
    per spatial axis for sliding windows (kernel, stride, padding, dilation; height first).

    ``out_channels`` and ``groups`` are a convolution's; ``in_features``/``out_features`` a
    linear layer's; ``output_size`` an adaptive pool's target; ``connections`` the number of
    (input map, output map) pairs of a connection-table convolution (LeNet-5's C3).
    """

    kind: Kind
    windows: tuple[Window, ...] = ()
    ceil_mode: bool = False
    groups: int = 1
    out_channels: int | None = None
    in_features: int | None = None
    out_features: int | None = None
    output_size: tuple[int, ...] | None = None
    connections: int | None = None

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(w.kernel for w in self.windows)

    @property
    def stride(self) -> tuple[int, ...]:
        return tuple(w.stride for w in self.windows)

    @property
    def padding(self) -> tuple[int, ...]:
        return tuple(w.padding for w in self.windows)

    @property
    def dilation(self) -> tuple[int, ...]:
        return tuple(w.dilation for w in self.windows)


# A row's identity: (path, call).  The model's input is INPUT.
RowKey = tuple[str, int]
INPUT: RowKey = ("(input)", 0)


@dataclass(frozen=True)
class RField:
    """Receptive field of one output unit along each spatial axis (height, width...).

    ``size``: input cells one unit sees; ``jump``: input cells between neighbouring units
    (effective stride), None after a global operation; ``start``: input coordinate of the first
    cell unit 0 sees (negative = padding).  Unit ``i`` sees ``[start + i*jump, start + i*jump +
    size - 1]``.
    """

    size: tuple[int, ...]
    jump: tuple[int, ...] | None
    start: tuple[int, ...]
    is_global: bool = False

    def text(self) -> str:
        return _axes(self.size)

    def jump_text(self) -> str:
        return "-" if self.jump is None else _axes(self.jump)


def _axes(values: tuple[int, ...]) -> str:
    if not values:
        return "-"
    if len(set(values)) == 1:
        return str(values[0])
    return "x".join(map(str, values))


@dataclass(frozen=True)
class Row:
    """One line of the table: a module call (``kind='module'``), a functional op called in a
    container's forward (``'op'``) or a module that holds parameters but was never called
    (``'uncalled'``).

    Counts of a module row include everything under it.  ``params`` are attributed to the
    module that owns them (a shared tensor to its first owner, a module called twice at its
    first call).  ``activations`` = elements of the (first) output, per batch.
    ``layer`` is the typed layer of a leaf (the first op under it that has one) or of a block
    its rule names; None for element-wise ops and plain containers.

    ``producers`` is the graph: the rows whose outputs this row reads, as (path, call) keys
    of *leaf* rows (leaf modules and ops; :data:`INPUT` for the model's input), in argument
    order without repeats.  A drawing at a coarser depth maps each key to its ancestor.
    """

    path: str
    type: str
    kind: str
    depth: int
    parent: str | None
    call: int
    leaf: bool
    layer: Layer | None
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    weights: int
    biases: int
    trainable: int
    activations: int
    activation_bytes: int
    macs: int
    other_ops: int
    uncounted: tuple[str, ...]
    field: RField | None
    fit: str  # "exact", "-", or what the window drops/rounds, per axis
    notes: tuple[str, ...] = ()
    producers: tuple[RowKey, ...] = ()

    @property
    def key(self) -> RowKey:
        return (self.path, self.call)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output_shapes[0] if self.output_shapes else ()

    @property
    def volume(self) -> str:
        """The lecture's W x H x D form of the output (of one image), e.g. ``224x224x64``."""
        shape = self.output_shape
        if len(shape) >= 3:
            c, *spatial = shape[1:]
            return "x".join(map(str, [*reversed(spatial), c]))
        if len(shape) == 2:
            return str(shape[1])
        return "x".join(map(str, shape)) or "-"

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["volume"] = self.volume
        d["flops"] = self.flops
        return d


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes one training step holds at its peak, per optimizer, and what makes them up."""

    saved_activations: int  # tensors autograd keeps for backward (per batch)
    parameters: int
    gradients: int  # one per trainable parameter
    sgd_momentum_state: int  # one momentum buffer per trainable parameter
    adam_state: int  # two moment buffers per trainable parameter

    @property
    def sgd_momentum(self) -> int:
        return self.saved_activations + self.parameters + self.gradients + self.sgd_momentum_state

    @property
    def adam(self) -> int:
        return self.saved_activations + self.parameters + self.gradients + self.adam_state

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sgd_momentum"] = self.sgd_momentum
        d["adam"] = self.adam
        return d


@dataclass(frozen=True)
class Totals:
    params: int
    trainable: int
    frozen: int
    weights: int
    biases: int
    param_bytes: int
    buffers: int
    buffer_bytes: int
    macs: int
    other_ops: int
    input_values: int  # per batch
    activation_values: int  # forward allocations incl. the input, per batch
    activation_bytes: int
    training: TrainingMemory
    uncounted: dict[str, int]  # op name -> calls with no counting rule
    batch: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activation_values_per_image(self) -> float:
        return self.activation_values / self.batch

    @property
    def activation_bytes_per_image(self) -> float:
        return self.activation_bytes / self.batch

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["training"] = self.training.to_dict()
        d["flops"] = self.flops
        d["activation_values_per_image"] = self.activation_values_per_image
        d["activation_bytes_per_image"] = self.activation_bytes_per_image
        return d


@dataclass(frozen=True)
class Analysis:
    """Result of :func:`cnnlab.analysis.analyze`."""

    model: str  # class name of the analyzed module
    input_shape: tuple[int, ...]  # N x C x spatial
    dtype: str
    rows: tuple[Row, ...]
    totals: Totals
    conventions: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    output_shapes: tuple[tuple[int, ...], ...] = ()  # every tensor the model returns
    # Every input the model takes (N x ... each); input_shape and dtype are the first one's.
    input_shapes: tuple[tuple[int, ...], ...] = ()

    def visible(self, depth: int | None = None) -> list[Row]:
        """Rows down to ``depth`` (1 = the model's children; None = everything).

        A row at the cut-off depth stands for its whole subtree, so the counts of the visible
        rows that have no visible parent always add up to the totals, whatever the depth.
        """
        if depth is None:
            return list(self.rows)
        return [r for r in self.rows if r.depth <= depth]

    def row(self, path: str, call: int = 1) -> Row:
        for r in self.rows:
            if r.path == path and r.call == call:
                return r
        raise KeyError(path)

    def leaves(self) -> list[Row]:
        """Rows that are not broken down further (leaf modules and functional ops)."""
        return [r for r in self.rows if r.leaf]

    def producers(self, row: Row) -> list[Row | None]:
        """The rows ``row`` reads from (None stands for the model's input)."""
        by_key = {r.key: r for r in self.rows}
        return [None if k == INPUT else by_key[k] for k in row.producers]

    def consumers(self, row: Row) -> list[Row]:
        """The leaf rows that read ``row``'s output (``row`` a leaf)."""
        return [r for r in self.rows if r.leaf and row.key in r.producers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "strict": self.strict,
            "output_shapes": [list(o) for o in self.output_shapes],
            "input_shapes": [list(i) for i in self.input_shapes],
            "conventions": dict(self.conventions),
            "totals": self.totals.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
        }
