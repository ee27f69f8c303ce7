"""Branch and merge: parallel paths over one input, merged by concatenation or addition.

``{conv1-64 | conv3-128 | maxpool3/1-conv1-32}cat`` runs each path on the same ``C x H x W``
input and concatenates their outputs along the channels (GoogLeNet's Inception module,
Szegedy et al. 2015); ``{conv3-64-bn-relu-conv3-64-bn | id}add-relu`` adds them (ResNet's
residual block, He et al. 2016, with ``id`` the identity shortcut).  A path is a spec of its
own (any layers that keep a volume, repetitions and branches included); its modules are named
by the naming rule within the path, and the branch is one module with children ``path1``,
``path2``, ... .  The shapes are checked at the merge: ``cat`` needs the same H x W on every
path, ``add`` the same C x H x W; where the input size is unknown, the paths must agree for
every input size tried (:data:`_PROBES`).

Pure Python except :meth:`Branch.module` and :meth:`Branch.read` (torch on first use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from cnnlab.errors import GeometryError, SpecError
from cnnlab.notation._values import FieldError, settle
from cnnlab.notation.layer import Layer, cells_through
from cnnlab.notation.spec import Spec

__all__ = ["MERGES", "Branch"]

MERGES = ("cat", "add")
_PROBES = (7, 8, 31, 32, 224, 225)  # input sides at which paths of unknown input must agree


@dataclass(frozen=True)
class Branch(Layer):
    """``{path | path ...}cat`` or ``...}add``: see the module docstring.  ``paths``: each a
    :class:`Spec` (or a tuple of layers, made one); ``merge``: ``"cat"`` or ``"add"``.
    ``text``: the source, for carets (not part of equality)."""

    needs_volume = True
    role = "conv"  # counted like a conv of its stage: branch2_1, then relu2_1 after it
    takes_name = True

    paths: tuple[Spec, ...] = ()
    merge: str = "cat"
    text_: str = field(default="", compare=False, repr=False)

    words: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.merge not in MERGES:
            raise FieldError(
                "merge",
                f"a branch ends with its merge: '}}cat' (channels concatenated) or '}}add' "
                f"(summed), got {self.merge!r}",
            )
        paths = tuple(p if isinstance(p, Spec) else Spec(tuple(p), self.text_) for p in self.paths)
        if len(paths) < 2:
            raise FieldError("paths", "a branch needs two or more paths, separated by '|'")
        for path in paths:
            for layer in path.layers:
                if layer.flattens:
                    raise SpecError(
                        "a branch's paths must keep a C x H x W volume to be merged (no "
                        "flatten or fc inside a branch)",
                        self.text_,
                        layer.pos,
                    )
        settle(self, "paths", paths)

    @property
    def depth(self) -> int:
        return 1 + max(layer.depth for path in self.paths for layer in path.layers)

    def head(self) -> str:
        return "{" + "|".join(p.canonical() for p in self.paths) + "}" + self.merge

    def prefix(self) -> str:
        return "branch"

    def cells(self, axis, n):
        return cells_through(self.paths[0].layers, axis, n)

    def infer(self, name, shape, hw):
        c, h, w = shape
        size = None if h is None else (h, w)
        outs = []
        params = 0
        macs: int | None = 0
        for path in self.paths:
            steps = path.infer(c, size)
            outs.append(steps[-1].output)
            params += sum(s.params for s in steps)
            if macs is not None and all(s.macs is not None for s in steps):
                macs += sum(s.macs for s in steps)  # type: ignore[misc]
            else:
                macs = None
        self._check(name, outs)
        if h is None:
            self._agree_everywhere(name, c)
        channels = sum(o[0] for o in outs) if self.merge == "cat" else outs[0][0]
        return (channels, *outs[0][1:]), params, macs

    def _check(self, name: str | None, outs: list) -> None:
        first = outs[0]
        for i, out in enumerate(outs[1:], start=2):
            same = out[1:] == first[1:] if self.merge == "cat" else out == first
            if not same:
                need = "the same H x W" if self.merge == "cat" else "the same C x H x W"
                raise SpecError(
                    f"{name}: the paths disagree at the merge: path 1 gives {_shape(first)}, "
                    f"path {i} gives {_shape(out)}; {self.merge} needs {need}",
                    self.text_,
                    self.pos,
                )

    def _agree_everywhere(self, name: str | None, c: int) -> None:
        """Unknown input size: the paths must give the same H x W at every probe size."""
        for n in _PROBES:
            outs = []
            for path in self.paths:
                try:
                    outs.append(path.infer(c, n)[-1].output)
                except GeometryError:
                    break
            else:
                try:
                    self._check(name, outs)
                except SpecError as exc:
                    raise SpecError(
                        f"{exc.reason} (for a {n}x{n} input)", self.text_, self.pos
                    ) from None

    def module(self, shape):
        from cnnlab.notation.build import BranchModule, build_spec

        c, h, w = shape
        size = None if h is None else (h, w)
        nets = [build_spec(p, in_channels=c, input_size=size, init="torch") for p in self.paths]
        return BranchModule(nets, self.merge)

    @classmethod
    def read(cls, m, name):
        from cnnlab.notation.build import BranchModule
        from cnnlab.notation.formatter import spec_from_module

        if type(m) is not BranchModule:
            return None
        return cls(tuple(spec_from_module(p) for p in m.paths), m.merge, name=name)

    def where(self, name: str | None) -> str:
        return f"{name} ({'{...}'}{self.merge})"


def _shape(shape: tuple[Any, ...]) -> str:
    return "x".join("?" if v is None else str(v) for v in shape)
