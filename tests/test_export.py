"""`cnnlab export`: ONNX (dynamic batch, onnx.checker, onnxruntime against PyTorch at batch
sizes 1 and 3), TorchScript (reloaded and compared) and safetensors (the run's record), for a
real run end to end and for one model of every zoo family."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train.export import ATOL, RTOL, compare_onnx, export_model
from cnnlab.train.run import build_from_record, load_weights, open_run, read_record

# One model per zoo family (the module that registers it), at a small input.
FAMILIES = {
    "cnnlab.zoo.lenet": [("lenet5", {"input_size": 28}, (1, 28, 28))],
    "cnnlab.zoo.resnet": [
        ("resnet20", {"in_channels": 1}, (1, 28, 28)),  # CIFAR ResNet, option-A shortcuts
        ("resnet18", {"num_classes": 10}, (3, 32, 32)),
    ],
    "cnnlab.zoo.alexnet": [("alexnet", {"num_classes": 10, "input_size": 67}, (3, 67, 67))],
    "cnnlab.zoo.zfnet": [("zfnet", {"num_classes": 10, "input_size": 64}, (3, 64, 64))],
    "cnnlab.zoo.vgg": [("vgg_a", {"num_classes": 10, "input_size": 32}, (3, 32, 32))],
    "cnnlab.zoo.googlenet": [("googlenet", {"num_classes": 10}, (3, 32, 32))],
}
CASES = [case for cases in FAMILIES.values() for case in cases]


def _images(run, n):
    """The first ``n`` real test images of the run's dataset, normalised as in training."""
    x = load_dataset(run.dataset, "test").images[:n].float() / 255
    mean = torch.tensor(run.mean).view(1, -1, 1, 1)
    return (x - mean) / torch.tensor(run.std).view(1, -1, 1, 1)


def test_every_zoo_family_has_a_model_in_the_export_tests():
    builders = [cnnlab.model_info(n).builder for n in cnnlab.list_models()]
    families = {getattr(b, "func", b).__module__ for b in builders}  # functools.partial too
    assert families <= set(FAMILIES), f"add {sorted(families - set(FAMILIES))} to FAMILIES"


@pytest.mark.parametrize(("name", "options", "shape"), CASES, ids=[c[0] for c in CASES])
def test_each_zoo_family_exports_to_onnx_with_a_dynamic_batch(tmp_path, name, options, shape):
    torch.manual_seed(0)
    model = cnnlab.create_model(name, **options).eval()
    result = export_model(model, shape, "onnx", tmp_path / f"{name}.onnx")
    proto = onnx.load(result.path)
    onnx.checker.check_model(proto, full_check=True)
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic, not a fixed size
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(b, *shape, generator=g) for b in (1, 3)]
    assert compare_onnx(result.path.read_bytes(), model, inputs) <= 1e-3


def test_an_export_that_disagrees_with_pytorch_is_refused_and_not_written(tmp_path):
    model = cnnlab.create_model("lenet5", input_size=28).eval()
    out = tmp_path / "lenet5.onnx"
    export_model(model, (1, 28, 28), "onnx", out)
    with torch.no_grad():
        model.output.bias += 1.0  # the file now holds another model
    x = torch.randn(3, 1, 28, 28)
    with pytest.raises(cnnlab.CnnlabError, match="disagrees with PyTorch at batch 3"):
        compare_onnx(out.read_bytes(), model, [x])


def test_run_exports_through_the_cli_and_the_files_give_the_runs_outputs(small_runs, tmp_path):
    run = open_run(small_runs[0])
    model = run.build_model("final")
    out = {fmt: tmp_path / f"model.{fmt}" for fmt in ("onnx", "torchscript", "safetensors")}
    for fmt, path in out.items():
        done = subprocess.run(
            [sys.executable, "-m", "cnnlab", "export", str(run.path), "--format", fmt,
             "--out", str(path), "--weights", "final"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {path} ({fmt},") and path.stat().st_size > 0

    session = ort.InferenceSession(out["onnx"].read_bytes(), providers=["CPUExecutionProvider"])
    meta = {p.key: p.value for p in onnx.load(out["onnx"]).metadata_props}
    assert json.loads(meta["cnnlab"])["classes"] == list(run.classes)
    scripted = torch.jit.load(out["torchscript"])
    record, tensors = load_weights(out["safetensors"])
    assert record == read_record(run.weights_path("final"))
    rebuilt = build_from_record(record)
    rebuilt.load_state_dict(tensors)
    rebuilt.eval()
    for batch in (1, 3):
        x = _images(run, batch)
        with torch.no_grad():
            ref = model(x).numpy()
            np.testing.assert_allclose(scripted(x).numpy(), ref, rtol=RTOL, atol=ATOL)
            np.testing.assert_array_equal(rebuilt(x).numpy(), ref)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_export_defaults_into_the_run_and_refuses_unwritable_outputs(small_runs, tmp_path, capsys):
    run_copy = tmp_path / "run"
    shutil.copytree(small_runs[1], run_copy)
    assert main(["export", str(run_copy), "--format", "torchscript"]) == 0
    assert (run_copy / "export" / "best.pt").is_file()
    capsys.readouterr()
    (tmp_path / "a-file").write_text("x")
    for argv, fragment in [
        (["--out", str(tmp_path / "a-file" / "m.onnx")], "a-file is not a folder"),
        (["--out", str(tmp_path / "no" / "m.onnx")], "does not exist"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--format", "tflite"], "--format 'tflite': expected one of onnx, torchscript"),
        (["--weights", "last"], "--weights 'last'"),
    ]:
        args = ["export", str(run_copy), *argv]
        if "--format" not in argv:
            args += ["--format", "onnx"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert sorted(p.name for p in (run_copy / "export").iterdir()) == ["best.pt"]
