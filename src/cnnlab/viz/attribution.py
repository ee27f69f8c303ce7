"""Where a response comes from, projected back to the pixels.

* :func:`unit_projection`: the gradient of one unit's activation with respect to the input
  image, with the backward pass through each ReLU changed as Zeiler & Fergus's deconvnet
  (2013: pass only positive gradients, whatever the forward was) or as guided
  backpropagation (Springenberg et al. 2015, "Striving for simplicity": pass a gradient only
  where both it and the forward input are positive).  Only ``nn.ReLU`` modules are changed; a
  network with other activations (LeNet-5's scaled tanh) gets their plain gradient there.
* :func:`grad_cam` (Selvaraju et al. 2017): a class's evidence map at a layer: the layer's
  maps weighted by the spatial mean of the class score's gradient, summed, rectified and
  scaled bilinearly to the input.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["METHODS", "grad_cam", "grad_cam_figure", "unit_projection"]

METHODS = ("guided", "deconvnet")


def _relu_hooks(model: Any, method: str) -> list[Any]:
    import torch
    from torch import nn

    class _Relu(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            passed = grad.clamp(min=0)
            return passed if method == "deconvnet" else passed * (x > 0)

    def replace(module: Any, args: tuple[Any, ...], out: Any) -> Any:
        # For an in-place ReLU the input already is the output: relu(relu(x)) = relu(x), and
        # (relu(x) > 0) is the same mask as (x > 0).
        return _Relu.apply(args[0])

    return [m.register_forward_hook(replace) for m in model.modules() if isinstance(m, nn.ReLU)]


def unit_projection(
    model: Any, image: Any, layer: str, channel: int, unit: tuple[int, int], method: str = "guided"
) -> Any:
    """The projection (C, H, W float tensor) onto the normalized input ``image`` (C, H, W)
    of the activation of ``layer``'s ``channel`` at map position ``unit``."""
    import torch

    from cnnlab.viz.hooks import hooked

    if method not in METHODS:
        raise CnnlabError(f"--project {method!r}: expected one of {', '.join(METHODS)}")
    x = image[None].clone().requires_grad_(True)
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, module: Any, args: Any, out: Any) -> None:
        seen["out"] = out[0] if isinstance(out, tuple | list) else out

    handles = _relu_hooks(model, method)
    was_training = model.training
    model.eval()
    try:
        with hooked(model, keep, [layer]), torch.enable_grad():
            model(x)
            out = seen["out"]
            out[0, channel, unit[0], unit[1]].backward()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return x.grad[0].detach()


def grad_cam(model: Any, image: Any, layer: str, target: int | None = None) -> tuple[Any, int]:
    """(cam, class): the Grad-CAM map (H, W float tensor in [0, 1], the input's size) of
    class ``target`` (default: the predicted one) at ``layer`` for the normalized ``image``."""
    import torch
    import torch.nn.functional as F

    from cnnlab.viz.hooks import hooked

    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, module: Any, args: Any, out: Any) -> None:
        t = out[0] if isinstance(out, tuple | list) else out
        t.retain_grad()
        seen["maps"] = t

    was_training = model.training
    model.eval()
    try:
        with hooked(model, keep, [layer]), torch.enable_grad():
            x = image[None].clone().requires_grad_(True)
            logits = model(x)
            logits = logits[0] if isinstance(logits, tuple | list) else logits
            k = logits.shape[1]
            cls = int(logits.argmax(dim=1)) if target is None else int(target)
            if not 0 <= cls < k:
                raise CnnlabError(f"--class {cls}: the model has classes 0..{k - 1}")
            logits[0, cls].backward()
    finally:
        model.train(was_training)
    maps = seen["maps"]
    if maps.dim() != 4:
        raise CnnlabError(
            f"--layer {layer}: Grad-CAM needs maps (N x D x H x W), got {tuple(maps.shape)}"
        )
    weights = maps.grad[0].mean(dim=(1, 2))  # (D,): alpha_k, the mean gradient per map
    cam = F.relu((weights[:, None, None] * maps[0]).sum(dim=0)).detach()
    cam = F.interpolate(
        cam[None, None], size=tuple(image.shape[1:]), mode="bilinear", align_corners=False
    )[0, 0]
    top = float(cam.max())
    return (cam / top if top > 0 else cam), cls


def grad_cam_figure(image: Any, cam: Any, title: str) -> Any:
    """The image and the map over it: ``fig.axes[0]`` the image, ``fig.axes[1]`` the map
    (its second image layer holds ``cam``)."""
    import numpy as np

    from cnnlab.viz._figure import new_figure

    img = np.asarray(image)
    shown = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
    cmap = "gray" if img.shape[0] == 1 else None
    fig = new_figure(6.0, 3.4)
    axes = fig.subplots(1, 2)
    axes[0].imshow(shown, cmap=cmap, interpolation="nearest")
    axes[0].set_title("input", fontsize=8)
    axes[1].imshow(shown, cmap=cmap, interpolation="nearest")
    axes[1].imshow(np.asarray(cam), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_title("Grad-CAM (1 = the strongest evidence)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(top=0.8, bottom=0.02, left=0.02, right=0.98)
    return fig
