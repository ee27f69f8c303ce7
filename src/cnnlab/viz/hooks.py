"""Forward hooks that are always removed: the one safe way to look inside a forward.

A hook left behind by a failed forward keeps recording (and keeps its tensors alive) in every
later call of the model; :func:`hooked` removes every hook it set in a ``finally`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["hooked", "record_outputs"]

# hook(name, module, inputs, output): called after each hooked module's forward.
Hook = Callable[[str, nn.Module, tuple[Any, ...], Any], None]


def _named(model: nn.Module, names: Iterable[str] | None) -> list[tuple[str, nn.Module]]:
    modules = dict(model.named_modules())
    if names is None:
        return [(n, m) for n, m in modules.items() if n and not any(True for _ in m.children())]
    chosen = []
    for name in names:
        if name not in modules:
            known = ", ".join(n for n in list(modules)[1:6] if n)
            raise CnnlabError(
                f"{type(model).__name__} has no module {name!r}; module names are paths "
                f"such as {known}, ... (see cnnlab show)"
            )
        chosen.append((name, modules[name]))
    return chosen


@contextlib.contextmanager
def hooked(model: nn.Module, hook: Hook, names: Iterable[str] | None = None) -> Iterator[None]:
    """Call ``hook(name, module, inputs, output)`` after the forward of each module named in
    ``names`` (module paths, as ``model.named_modules()`` gives them; default: every leaf
    module) while the block runs.  Every hook is removed on leaving the block, also when it
    raises.  Raises :class:`CnnlabError` for a name the model does not have."""
    handles = []
    try:
        for name, module in _named(model, names):

            def call(m: nn.Module, args: tuple[Any, ...], out: Any, name: str = name) -> None:
                hook(name, m, args, out)

            handles.append(module.register_forward_hook(call))
        yield
    finally:
        for h in handles:
            h.remove()


def record_outputs(
    model: nn.Module, x: torch.Tensor, names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Run one forward of ``model`` on ``x`` without gradients and return the (first) output
    tensor of each named module (default: every leaf module), detached, keyed by name.  A
    module called twice keeps its last output."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        outs = out if isinstance(out, tuple | list) else (out,)
        t = next((o for o in outs if isinstance(o, torch.Tensor)), None)
        if t is not None:
            seen[name] = t.detach()

    with hooked(model, keep, names), torch.no_grad():
        model(x)
    return seen
