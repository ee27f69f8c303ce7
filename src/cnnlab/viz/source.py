"""What a picture is drawn of: a trained run, or a model built from a zoo name, a network in
the notation or ``file.py:factory`` (untrained, with its builder's initial weights)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["Subject", "conv_layers", "conv_weight", "load_subject", "module_named"]


@dataclass
class Subject:
    """A model to look inside, with what is known about its input.

    ``input_shape`` is (C, H, W); ``run`` the :class:`~cnnlab.train.Run` it came from (None
    for an untrained model); ``mean``/``std`` the normalisation its inputs get (pixel/255
    units; the run's, else 0 and 1); ``classes`` the class names when known."""

    model: Any
    label: str
    input_shape: tuple[int, int, int]
    run: Any = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def trained(self) -> bool:
        return self.run is not None


def _is_run(path: Path) -> bool:
    return path.is_dir()


def load_subject(
    text: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: str = "best",
    options: dict[str, Any] | None = None,
    num_classes: int | None = None,
) -> Subject:
    """A run folder (its ``weights``, "best" or "final") or a model target (see
    :func:`cnnlab.zoo.target.load_target`), on the CPU in float32 and eval mode."""
    path = Path(text)
    if _is_run(path):
        from cnnlab.train.run import open_run

        run = open_run(path)
        model = run.build_model(weights)
        return Subject(
            model=model,
            label=f"{run.record['target']} ({path.name})",
            input_shape=run.input_shape,
            run=run,
            mean=run.mean,
            std=run.std,
            classes=run.classes,
        )
    from cnnlab.zoo.target import load_target

    target = load_target(
        text, input_size=input_shape, num_classes=num_classes, options=options or {}
    )
    shape = tuple(int(v) for v in target.input_size)
    if len(shape) != 3:
        raise CnnlabError(f"{text}: pictures need an image input C x H x W, got {shape}")
    c = shape[0]
    return Subject(
        model=target.model.eval(),
        label=f"{target.label} (untrained)",
        input_shape=shape,  # type: ignore[arg-type]
        mean=(0.0,) * c,
        std=(1.0,) * c,
    )


def conv_layers(model: Any) -> list[str]:
    """Paths of the model's 2-D convolutions (``nn.Conv2d``, and layers that say what dense
    kernel they compute, such as LeNet-5's C3), in definition order."""
    return [n for n, m in model.named_modules() if n and conv_weight(m) is not None]


def conv_weight(module: Any) -> tuple[Any, Any] | None:
    """``(weight, mask)`` of a 2-D convolution: its dense kernel (K, C, kh, kw), and the
    (K, C) boolean connection matrix of a partially connected layer (None when every filter
    sees every input map); None for a module that is not a 2-D convolution."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        return module.weight.detach(), None
    dense = getattr(module, "dense_weight", None)
    if callable(dense):
        w = dense().detach()
        if w.dim() == 4:
            mask = module.mask() if callable(getattr(module, "mask", None)) else None
            return w, mask
    return None


def module_named(model: Any, name: str | None, *, what: str = "--layer") -> tuple[str, Any]:
    """``(name, module)``; ``None`` means the first convolution.  A name the model does not
    have is refused, listing its convolutions."""
    convs = conv_layers(model)
    if name is None:
        if not convs:
            raise CnnlabError(f"{type(model).__name__} has no 2-D convolution to show")
        name = convs[0]
    modules = dict(model.named_modules())
    if name not in modules or not name:
        shown = ", ".join(convs[:8]) + (", ..." if len(convs) > 8 else "")
        raise CnnlabError(
            f"{what} {name!r}: the model has no such module; its convolutions are "
            f"{shown or 'none'} (cnnlab show lists every module)"
        )
    return name, modules[name]
