"""Build a model on the meta device (shapes only) without paying for its initialisation.

``torch.device("meta")`` alone already avoids allocating weights, but every ``nn.init`` call
then runs PyTorch's Python meta kernels, whose first use in a process costs about a second
(measured on this machine: they import torch._dynamo).  Initialising shape-only tensors does
nothing, so :func:`build_on_meta` skips the in-place fill operations while building.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.utils._device import DeviceContext, _device_constructors

__all__ = ["build_on_meta"]

T = TypeVar("T")

# In-place operations that only fill values (they keep the shape): what initialisers use.
_FILLS = frozenset(
    {
        "normal_", "uniform_", "fill_", "zero_", "copy_", "mul_", "add_", "sub_", "div_",
        "clamp_", "clamp_min_", "clamp_max_", "erfinv_", "exponential_", "bernoulli_",
        "random_", "log_normal_", "cauchy_", "geometric_", "abs_", "sqrt_", "neg_", "sign_",
        "fmod_", "remainder_", "masked_fill_", "index_fill_", "scatter_", "copysign_",
        "zeros_", "ones_", "constant_", "kaiming_normal_", "kaiming_uniform_",
        "xavier_normal_", "xavier_uniform_", "trunc_normal_", "orthogonal_", "eye_",
        "dirac_", "sparse_",
    }
)  # fmt: skip


class _MetaBuild(DeviceContext):
    """``with torch.device("meta")`` (PyTorch's own mode, so ``torch.get_default_device()``
    and nested device contexts behave as there) that also skips value fills of meta tensors:
    one Python handler per torch call of the build instead of two."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        action = _ACTIONS.get(func)
        if action is None:
            action = _ACTIONS[func] = _action(func)
        if action == _FILL:
            # Tensor methods get the tensor first; nn.init functions pass it as `tensor=`.
            target = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        elif action == _CONSTRUCTOR and kwargs.get("device") is None:
            kwargs["device"] = self.device
        return func(*args, **kwargs)


_OTHER, _FILL, _CONSTRUCTOR = 0, 1, 2
# torch function -> what the build does with it (one dictionary lookup per call of a build
# that makes thousands of modules, instead of a name test and a set test)
_ACTIONS: dict[Any, int] = {}


def _action(func: Any) -> int:
    if getattr(func, "__name__", "") in _FILLS:
        return _FILL
    return _CONSTRUCTOR if func in _device_constructors() else _OTHER


def build_on_meta(build: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``build(*args, **kwargs)`` with every new tensor on the meta device and the value
    fills of initialisers skipped.  Raises whatever the builder raises (a builder that
    computes with its initial values, e.g. an index table from ``repeat_interleave``, fails
    on meta: build it on the CPU instead)."""
    # As in analyze(): no cyclic-GC passes while thousands of small modules are created.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _MetaBuild("meta"):
            return build(*args, **kwargs)
    finally:
        if gc_was_enabled:
            gc.enable()
