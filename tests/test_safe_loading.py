"""No file cnnlab loads can run code: a weights file or a checkpoint replaced by a pickle that
would create a file is refused by eval, predict, export, ensemble and train --resume with one
error line, and the file is never created; damaged or foreign files are clear errors naming
the file and the tensor; torchvision-style state_dicts load from .safetensors, and from .pth
only through torch.load(weights_only=True)."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_data_writers import real_fashion_dir
from test_resume import write_folder

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.train.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, restore
from cnnlab.train.pretrained import load_pretrained, read_state_dict


class _CreatesAFile:
    """Unpickling this runs code: it creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').close()",))


def payloads(sentinel: Path) -> dict[str, bytes]:
    """A bare pickle and a torch.save archive, each creating ``sentinel`` when unpickled."""
    bare = pickle.dumps({"conv1.weight": _CreatesAFile(sentinel)})
    archive = sentinel.with_name("payload.pth")
    torch.save({"conv1.weight": _CreatesAFile(sentinel)}, archive)
    return {"pickle": bare, "torch.save": archive.read_bytes()}


def test_the_payloads_really_run_code_when_unpickled(tmp_path):
    """The malicious files of these tests are real: plain unpickling creates the file."""
    sentinel = tmp_path / "pwned"
    blobs = payloads(sentinel)
    code = f"import pickle, sys; pickle.loads(open({str(tmp_path / 'p')!r}, 'rb').read())"
    (tmp_path / "p").write_bytes(blobs["pickle"])
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert sentinel.exists()
    sentinel.unlink()
    torch.load(tmp_path / "payload.pth", weights_only=False)  # what cnnlab never does
    assert sentinel.exists()


def one_error_line(capsys, argv: list[str]) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_eval_predict_export_ensemble_refuse_a_pickled_weights_file(small_runs, tmp_path,
                                                                     capsys, kind):  # fmt: skip
    sentinel = tmp_path / "pwned"
    blob = payloads(sentinel)[kind]
    run = tmp_path / "run"
    shutil.copytree(small_runs[0], run)
    for name in ("best", "final"):
        (run / "weights" / f"{name}.safetensors").write_bytes(blob)
    image = tmp_path / "shoe.png"
    Image.new("L", (28, 28), 200).save(image)
    commands = [
        ["eval", run],
        ["predict", run, image],
        ["export", run, "--format", "safetensors", "--out", tmp_path / "x.safetensors"],
        ["ensemble", run, small_runs[1]],
    ]
    for argv in commands:
        line = one_error_line(capsys, argv)
        assert str(run / "weights") in line and "refused" in line and "never unpickles" in line
        assert not sentinel.exists(), argv
    assert not (tmp_path / "x.safetensors").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run of cnnlab train (in this process) on 64 real images, with checkpoints."""
    real_fashion_dir()
    root = tmp_path_factory.mktemp("tiny")
    data = write_folder(root / "data", n_train=64, n_test=20)
    out = root / "run"
    code = main(["train", "conv3-4-relu-maxpool-fc-10", "--data", f"folder:{data}",
                 "--batch-size", "16", "--epochs", "2", "--threads",
                 str(torch.get_num_threads()), "--out", str(out), "--quiet",
                 "--no-report"])  # fmt: skip
    assert code == 0
    assert len(checkpoint_paths(out / "checkpoints")) == 2
    return out


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_resume_refuses_checkpoints_replaced_by_a_pickle(tiny_run, tmp_path, capsys, kind):
    sentinel = tmp_path / "pwned"
    blob = payloads(sentinel)[kind]
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for path in checkpoint_paths(run / "checkpoints"):
        path.write_bytes(blob)
    line = one_error_line(capsys, ["train", "--resume", run, "--epochs", "3"])
    assert "step-000000006.safetensors: refused" in line and "never unpickles" in line
    assert "no valid checkpoint is left" in line
    assert not sentinel.exists()


def test_a_checkpoint_of_another_model_names_the_tensor(tiny_run):
    from cnnlab.train.optim import Schedule, make_optimizer
    from cnnlab.train.recipe import Recipe
    from cnnlab.train.state import TrainState

    ckpt = load_checkpoint(tiny_run / "checkpoints")
    other = cnnlab.build_spec("conv3-6-relu-maxpool-fc-10", in_channels=1, input_size=28)
    recipe = Recipe(epochs=1, batch_size=16)
    state = TrainState(other, make_optimizer(other, recipe), Schedule(recipe, 4, 4))
    with pytest.raises(CheckpointError, match=r"tensor '[^']+' has shape \(4, 1, 3, 3\)"):
        restore(state, ckpt)


# ---- torchvision-style state_dicts -----------------------------------------------------------
# torchvision's names for the tensors of its AlexNet and VGG-11 (numbered by position in
# `features` and `classifier`); its ResNets use the paper's names, as cnnlab does.
def _numbered(convs: list[int], fcs: list[int]) -> list[str]:
    names = [f"features.{i}" for i in convs] + [f"classifier.{i}" for i in fcs]
    return [f"{n}.{p}" for n in names for p in ("weight", "bias")]


TORCHVISION_NAMES = {
    "alexnet_onetower": _numbered([0, 3, 6, 8, 10], [1, 4, 6]),
    "vgg11": _numbered([0, 3, 6, 8, 11, 13, 16, 18], [0, 3, 6]),
}


def _torchvision_style(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A model and, from another seed, a state_dict of the same architecture under
    torchvision's names."""
    size = 64 if name.startswith("alexnet") else 32
    torch.manual_seed(1)
    source = cnnlab.create_model(name, num_classes=10, input_size=size)
    tensors = source.state_dict()
    if name in TORCHVISION_NAMES:
        tensors = dict(zip(TORCHVISION_NAMES[name], tensors.values(), strict=True))
    torch.manual_seed(2)
    return cnnlab.create_model(name, num_classes=10, input_size=size), tensors


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("resnet18", ".pth"), ("resnet18", ".safetensors"), ("vgg11", ".safetensors"),
     ("alexnet_onetower", ".pth")],
)  # fmt: skip
def test_torchvision_style_state_dicts_load_into_the_zoo(tmp_path, name, suffix):
    model, tensors = _torchvision_style(name)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(tensors, path)
    else:
        save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    mapping = load_pretrained(model, path)
    assert list(mapping) == list(tensors)
    assert (mapping == {k: k for k in tensors}) == (name == "resnet18")
    mine = model.state_dict()
    assert all(torch.equal(mine[ours], tensors[theirs]) for theirs, ours in mapping.items())


def test_a_pth_that_would_run_code_is_refused_by_the_weights_only_loader(tiny_run, tmp_path,
                                                                         capsys):  # fmt: skip
    sentinel = tmp_path / "pwned"
    payloads(sentinel)  # writes payload.pth beside the sentinel
    with pytest.raises(CnnlabError, match=r"payload\.pth: refused: it holds more than tensors"):
        read_state_dict(tmp_path / "payload.pth")
    assert not sentinel.exists()
    data = tiny_run.parent / "data"
    line = one_error_line(capsys, ["train", "conv3-4-relu-maxpool-fc-10", "--data",
                                   f"folder:{data}", "--weights", tmp_path / "payload.pth",
                                   "--out", tmp_path / "run"])  # fmt: skip
    assert "payload.pth: refused: it holds more than tensors" in line
    assert "weights_only=True" in line
    assert not sentinel.exists() and not (tmp_path / "run").exists()


def test_damaged_and_foreign_state_dicts_name_the_file_and_the_tensor(tmp_path):
    model, tensors = _torchvision_style("resnet18")
    good = tmp_path / "good.pth"
    torch.save(tensors, good)
    cases = {
        "empty.pth": b"",
        "truncated.pth": good.read_bytes()[: good.stat().st_size // 2],
        "noise.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    }
    for file, blob in cases.items():
        (tmp_path / file).write_bytes(blob)
        with pytest.raises(CnnlabError, match=file.replace(".", r"\.")):
            load_pretrained(model, tmp_path / file)
    wrong_shape = dict(tensors, **{"fc.weight": torch.zeros(7, 512)})
    torch.save(wrong_shape, tmp_path / "shape.pth")
    with pytest.raises(CnnlabError, match=r"shape\.pth: tensor 'fc\.weight' has shape \(7, 512\)"):
        load_pretrained(model, tmp_path / "shape.pth")
    fewer = {k: v for k, v in tensors.items() if k != "layer1.0.conv1.weight"}
    torch.save(fewer, tmp_path / "fewer.pth")
    with pytest.raises(CnnlabError, match=r"'layer1\.0\.conv1\.weight' is missing"):
        load_pretrained(model, tmp_path / "fewer.pth")
    torch.save({"w": 3}, tmp_path / "notensor.pth")
    with pytest.raises(CnnlabError, match=r"entry 'w' is not a tensor"):
        load_pretrained(model, tmp_path / "notensor.pth")
    (tmp_path / "x.npz").write_bytes(b"PK")
    with pytest.raises(CnnlabError, match=r"unknown weights format '\.npz'"):
        load_pretrained(model, tmp_path / "x.npz")


def test_the_source_never_unpickles_except_through_restricted_loaders():
    """Static gate (PyTorch's TorchFix TOR102 rule, stricter): every torch.load passes
    weights_only=True, and nothing calls pickle.load/loads, torch.jit.load or a plain
    Unpickler; CIFAR's batches go through their own restricted Unpickler subclass.  The one
    torch.jit.load reloads, from memory, the TorchScript bytes export has just made, to
    compare them with the model (never a file)."""
    import ast

    src = Path(cnnlab.__file__).parent
    torch_loads = 0
    for file in sorted(src.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = ast.unparse(node.func)
            where = f"{file.relative_to(src)}:{node.lineno}"
            if name == "torch.jit.load":
                assert file.relative_to(src).as_posix() == "train/export.py", where
                assert ast.unparse(node.args[0]).startswith("io.BytesIO("), where
                continue
            assert name not in ("pickle.load", "pickle.loads"), where
            assert name not in ("pickle.Unpickler", "pickle._Unpickler"), where
            if name == "torch.load":
                torch_loads += 1
                flags = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in flags, where
                assert isinstance(flags["weights_only"], ast.Constant), where
                assert flags["weights_only"].value is True, where
    assert torch_loads >= 1  # the gate saw the one .pth reader


@pytest.mark.parametrize("header_bytes", [640, 896, 1152, 1408])
def test_a_safetensors_header_length_that_looks_like_a_pickle_is_still_safetensors(
    tmp_path, header_bytes
):
    """A header of 640 bytes starts the file with 0x80 0x02, a pickle's first two bytes."""
    import struct

    from safetensors.torch import load, save

    from cnnlab.train.tensorfile import foreign_format

    data = {"w": torch.arange(6, dtype=torch.float32)}
    blob = save(data, metadata={"pad": ""})
    n = struct.unpack("<Q", blob[:8])[0]
    blob = save(data, metadata={"pad": "x" * (header_bytes - n)})
    assert struct.unpack("<Q", blob[:8])[0] == header_bytes  # safetensors keeps it as given
    assert blob[:1] == b"\x80"
    assert foreign_format(blob) is None
    assert torch.equal(load(blob)["w"], data["w"])
    pickled = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    assert foreign_format(pickled) == "a Python pickle"


def test_a_safetensors_header_that_begins_like_a_pickle_still_loads(tmp_path):
    """A header of 640..1407 bytes begins with the bytes 0x80 0x02..0x05, as a pickle does:
    only a file that is not valid safetensors is taken for a pickle."""
    import struct

    from cnnlab.train.run import load_weights, save_weights

    model = cnnlab.build_spec("fc-10", in_channels=1, input_size=4)
    record = {"kind": "notation", "target": "fc-10", "kwargs": {}, "in_channels": 1,
              "input_size": [4, 4], "num_classes": 10, "classes": [str(i) for i in range(10)],
              "mean": [0.5], "std": [0.25], "dataset": ""}  # fmt: skip
    path = tmp_path / "w.safetensors"
    for pad in range(0, 1200):
        save_weights(path, model, {**record, "dataset": "x" * pad})
        head = path.read_bytes()[:2]
        if head[0] == 0x80 and head[1] in (2, 3, 4, 5):
            break
    else:
        pytest.fail("no padding gave a header length of 0x0280..0x0580")
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] >= 640
    saved, tensors = load_weights(path)
    assert saved["dataset"] == "x" * pad and set(tensors) == set(model.state_dict())
