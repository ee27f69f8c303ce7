"""The whitened first layer (recipe key ``whiten``): what its filters do to the training
patches, that ``frozen`` keeps them through training, and the mistake of a model without a
convolution to whiten."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_data_writers import real_fashion_dir

from cnnlab.errors import CnnlabError
from cnnlab.notation import build_spec
from cnnlab.train import Request, prepare
from cnnlab.train.init import whiten_first_conv

SPEC = "conv4/2-12(pad=1)-bn-relu-conv3-8-maxpool-bn-relu-gap-fc-10"


def _patches(conv, train, images=10_000):
    x = train.images[:images].double() / 255.0
    x = (x - train.mean[0]) / train.std[0]
    p = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    return p.transpose(1, 2).reshape(-1, p.shape[1])


def _job(tmp_path, whiten, name):
    real_fashion_dir()
    return prepare(
        Request(
            target=SPEC,
            data="fashion-mnist",
            recipe="fast",
            sets=["iterations=4", "epochs=none", "batch_size=64", f"whiten={whiten}"],
            flags={"seed": 1, "threads": 1},
            out=str(tmp_path / name),
        )
    )


def test_whitened_filters_decorrelate_the_training_patches(tmp_path):
    job = _job(tmp_path, "init", "w")
    conv, train = job.model.conv1_1, job.data.train
    w = conv.weight.detach().double().flatten(1)  # (12, 16): v1, -v1, v2, -v2, ...
    assert torch.equal(w[1::2], -w[0::2]) and not conv.bias.detach().any()
    p = _patches(conv, train)
    out = (p - p.mean(0)) @ w[0::2].T  # the six directions of most variance
    cov = torch.cov(out.T)
    # eps = 5e-4 against eigenvalues of 0.3 and more: unit variance within a few 0.1%
    assert torch.allclose(cov.diagonal(), torch.ones(6, dtype=torch.float64), atol=5e-3)
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 1e-6  # uncorrelated
    # they are the directions of most variance: no other unit filter has more
    variance = torch.cov(p.T)
    top = torch.linalg.eigvalsh(variance).flip(0)[:6]
    unit = w[0::2] / w[0::2].norm(dim=1, keepdim=True)
    assert torch.allclose(torch.einsum("fi,ij,fj->f", unit, variance, unit), top, rtol=1e-6)


def test_frozen_whitening_is_not_trained_and_init_is(tmp_path):
    frozen, init = _job(tmp_path, "frozen", "f"), _job(tmp_path, "init", "i")
    w0 = frozen.model.conv1_1.weight.detach().clone()
    assert torch.equal(w0, init.model.conv1_1.weight.detach())
    frozen.fit(), init.fit()
    assert torch.equal(frozen.model.conv1_1.weight.detach(), w0)
    assert frozen.model.conv1_1.bias.detach().any()  # the bias still learns
    assert not torch.equal(init.model.conv1_1.weight.detach(), w0)
    assert not frozen.model.conv1_1.weight.requires_grad


def test_a_model_without_a_convolution_over_the_images_cannot_be_whitened():
    real_fashion_dir()
    from cnnlab.data import load_dataset

    train = load_dataset("fashion-mnist", "test")
    net = build_spec("fc-10", in_channels=1, input_size=28, num_classes=10)
    with pytest.raises(CnnlabError, match="whiten=none"):
        whiten_first_conv(net, train)


def test_a_network_without_a_convolution_trains_with_the_fast_recipe_and_a_note(tmp_path):
    real_fashion_dir()
    job = prepare(
        Request(
            target="fc-32-relu-fc-10",
            data="fashion-mnist",
            recipe="fast",
            sets=["iterations=1", "epochs=none", "batch_size=64"],
            flags={"threads": 1},
            out=str(tmp_path / "mlp"),
        )
    )
    assert job.recipe.whiten == "init"
    assert any("not whitened" in n and "no convolution" in n for n in job.notes)


def test_frozen_keeps_loaded_weights_untrained_and_whitens_nothing(tmp_path):
    from safetensors.torch import save_file

    real_fashion_dir()
    net = build_spec(SPEC, in_channels=1, input_size=28, num_classes=10)
    torch.nn.init.normal_(net.conv1_1.weight)  # not a whitening
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "w.safetensors")
    job = prepare(
        Request(
            target=SPEC,
            data="fashion-mnist",
            recipe="fast",
            sets=["iterations=2", "epochs=none", "batch_size=64", "whiten=frozen"],
            flags={"seed": 1, "threads": 1},
            weights=str(tmp_path / "w.safetensors"),
            out=str(tmp_path / "run"),
        )
    )
    conv = job.model.conv1_1
    assert torch.equal(conv.weight.detach(), net.conv1_1.weight.detach())
    assert not conv.weight.requires_grad
    job.fit()
    assert torch.equal(conv.weight.detach(), net.conv1_1.weight.detach())


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(4, 2, 1, 1), ((3, 5), (1, 2), (2, 0), 1), (3, 1, 0, 1), (3, 2, 1, 2)],
)
def test_patches_are_unfolds_rows(kernel, stride, padding, dilation):
    # The strided-view patches (and the unfold fallback for dilation) against F.unfold.
    from cnnlab.train.init import _patches as patches

    torch.manual_seed(0)
    x = torch.randn(3, 2, 11, 9, dtype=torch.float64)
    conv = torch.nn.Conv2d(2, 4, kernel, stride, padding, dilation)
    p = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    assert torch.equal(patches(x, conv), p.transpose(1, 2).reshape(-1, p.shape[1]))
