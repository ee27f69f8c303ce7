"""The run folder: written from real models, opened, rebuilt with identical outputs; damage
and incompleteness are user errors naming the file (and the tensor)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import Dataset
from cnnlab.errors import CnnlabError
from cnnlab.train.evaluate import evaluate, probabilities
from cnnlab.train.run import (
    RunWriter,
    build_from_record,
    create_run_dir,
    open_run,
    read_record,
    save_weights,
)

SPEC = "conv3-4-bn-relu-maxpool-fc-3"


def _record(kind="notation", target=SPEC, **extra):
    record = {
        "kind": kind,
        "target": target,
        "kwargs": {},
        "in_channels": 1,
        "input_size": [8, 8],
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "mean": [0.25],
        "std": [0.5],
        "dataset": "toy",
    }
    record.update(extra)
    return record


def _trained_like(model):
    """Move the weights and BatchNorm statistics away from their initial values, so that a
    rebuilt model matches only if the file really was loaded."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()
    model(torch.randn(16, 1, 8, 8))  # updates running statistics
    return model.eval()


def _write_run(path, record=None):
    record = record or _record()
    model = _trained_like(build_from_record(record))
    run = RunWriter(path, record)
    run.write_config({"recipe": {"name": "test", "lr": 0.1, "missing": None}, "seed": 0})
    run.log({"epoch": 1, "train_loss": 1.5, "val_top1": 0.5, "lr": 0.1})
    run.save_weights(model, "best")
    run.save_weights(model, "final")
    run.log({"final": True, "test_top1": 0.4, "test_loss": float("nan")})
    return model


def test_a_run_rebuilds_its_model_with_identical_outputs(tmp_path):
    model = _write_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    assert run.input_shape == (1, 8, 8) and run.classes == ("a", "b", "c")
    assert run.dataset == "toy" and run.mean == (0.25,) and run.std == (0.5,)
    assert run.config["recipe"] == {"name": "test", "lr": 0.1}  # None is left out of TOML
    assert [m.get("epoch") for m in run.epochs] == [1]
    assert run.final == {"final": True, "test_top1": 0.4, "test_loss": None}
    x = torch.randn(5, 1, 8, 8)
    for weights in ("best", "final"):
        rebuilt = run.build_model(weights)
        assert not rebuilt.training
        assert next(rebuilt.parameters()).dtype == torch.float32
        assert torch.equal(rebuilt(x), model(x))
        for (name, a), (_, b) in zip(
            rebuilt.state_dict().items(), model.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    csv = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv[0].split(",")[:3] == ["epoch", "final", "train_loss"]
    assert len(csv) == 3


def test_zoo_and_file_targets_rebuild_too(tmp_path):
    zoo = _record("zoo", "resnet20", input_size=[8, 8])
    model = _write_run(tmp_path / "zoo", zoo)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(open_run(tmp_path / "zoo").build_model("final")(x), model(x))

    src = tmp_path / "mynet.py"
    src.write_text(
        textwrap.dedent(
            """
            from torch import nn
            def make():
                return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
            """
        )
    )
    rec = _record("file", f"{src}:make", file=str(src))
    model = _write_run(tmp_path / "file", rec)
    assert torch.equal(open_run(tmp_path / "file").build_model()(x), model(x))


def test_read_record_of_a_bare_weights_file(tmp_path):
    _write_run(tmp_path / "run")
    assert read_record(tmp_path / "run" / "weights" / "best.safetensors") == _record()


def test_a_truncated_weights_file_is_an_error_naming_it(tmp_path):
    _write_run(tmp_path / "run")
    path = tmp_path / "run" / "weights" / "best.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    run = open_run(tmp_path / "run")  # final is intact, so the run opens
    with pytest.raises(CnnlabError, match="damaged weights file") as err:
        run.build_model("best")
    assert str(path) in str(err.value)


def test_a_flipped_byte_in_the_tensors_is_caught_by_the_recorded_hash(tmp_path):
    _write_run(tmp_path / "run")
    path = tmp_path / "run" / "weights" / "final.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(CnnlabError, match="SHA-256") as err:
        open_run(tmp_path / "run").build_model("final")
    assert str(path) in str(err.value)


def test_a_header_that_is_not_json_is_an_error(tmp_path):
    _write_run(tmp_path / "run")
    path = tmp_path / "run" / "weights" / "final.safetensors"
    blob = bytearray(path.read_bytes())
    blob[9] = ord("}")
    path.write_bytes(bytes(blob))
    with pytest.raises(CnnlabError, match="final.safetensors: damaged"):
        open_run(tmp_path / "run")


def test_weights_of_another_shape_name_the_tensor(tmp_path):
    _write_run(tmp_path / "run")
    other = build_from_record(_record(target="conv3-8-bn-relu-maxpool-fc-3"))
    path = tmp_path / "run" / "weights" / "best.safetensors"
    save_weights(path, other, _record())  # the record says SPEC, the tensors are wider
    with pytest.raises(CnnlabError, match=r"tensor '.*weight' has shape \(8, 1, 3, 3\)") as err:
        open_run(tmp_path / "run").build_model("best")
    assert str(path) in str(err.value)


def test_a_folder_that_is_not_a_run_or_is_incomplete(tmp_path):
    with pytest.raises(CnnlabError, match="does not exist"):
        open_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="not a run folder"):
        open_run(tmp_path / "empty")
    _write_run(tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").unlink()
    with pytest.raises(CnnlabError, match="incomplete run, metrics.jsonl is missing"):
        open_run(tmp_path / "run")
    _write_run(tmp_path / "run2")
    with pytest.raises(CnnlabError, match="expected 'best' or 'final'"):
        open_run(tmp_path / "run2").build_model("last")


def test_a_weights_file_without_a_record(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CnnlabError, match="without a cnnlab construction record"):
        read_record(path)


def test_run_folders_never_overwrite(tmp_path):
    out = tmp_path / "given"
    assert create_run_dir(out, "x") == out
    (out / "weights" / "f").write_text("x")
    with pytest.raises(CnnlabError, match="exists and is not empty"):
        create_run_dir(out, "x")
    first = create_run_dir(None, "lenet5-toy", root=tmp_path / "runs")
    second = create_run_dir(None, "lenet5-toy", root=tmp_path / "runs")
    assert first != second and first.is_dir() and second.is_dir()


def _toy_dataset(n=37, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    return Dataset("toy", "test", images, labels, ("a", "b", "c")[:k], mean=(0.25,), std=(0.5,))


def test_evaluate_against_a_per_image_hand_computation():
    ds = _toy_dataset()
    model = _trained_like(build_from_record(_record()))
    result = evaluate(model, ds, batch_size=8, mean=(0.3,), std=(0.4,))
    x = (ds.images.float() / 255 - 0.3) / 0.4
    logits = model(x)
    assert result.n == 37
    assert result.loss == pytest.approx(F.cross_entropy(logits, ds.labels).item(), rel=1e-5)
    pred = logits.argmax(1)
    assert result.top1 == pytest.approx((pred == ds.labels).float().mean().item())
    assert result.top5 == 1.0  # 3 classes: top-5 is top-3
    confusion = [[0] * 3 for _ in range(3)]
    for t, p in zip(ds.labels.tolist(), pred.tolist(), strict=True):
        confusion[t][p] += 1
    assert result.confusion == confusion
    assert sum(map(sum, result.confusion)) == 37  # each image counted once
    for c in range(3):
        assert result.per_class[c] == pytest.approx(confusion[c][c] / sum(confusion[c]))
    model.train()
    evaluate(model, ds)
    assert model.training  # given back in the mode it had


def test_evaluate_refuses_a_model_with_other_classes():
    ds = _toy_dataset(k=2)
    with pytest.raises(CnnlabError, match="has 2 classes"):
        evaluate(build_from_record(_record()), ds)


def test_probabilities_normalise_as_training_did():
    ds = _toy_dataset()
    model = _trained_like(build_from_record(_record()))
    p = probabilities(model, ds.images, (0.25,), (0.5,), batch_size=10)
    expected = torch.softmax(model((ds.images.float() / 255 - 0.25) / 0.5), dim=1)
    assert p.shape == (37, 3)
    torch.testing.assert_close(p, expected, rtol=1e-5, atol=1e-6)
    assert json.dumps(evaluate(model, ds).to_dict())


def test_tensorboard_curves_when_tensorboard_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard (the optional extra) not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunWriter(tmp_path, _record())
    assert run.tensorboard
    run.log({"epoch": 1, "train_loss": 1.5, "val_top1": 0.5})
    run.log({"epoch": 2, "train_loss": 0.75, "val_top1": 0.625})
    run.log({"final": True, "test_top1": 0.6})
    run.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert loss == [(1, 1.5), (2, 0.75)]
    assert [e.value for e in events.Scalars("val_top1")] == [0.5, 0.625]


def test_no_event_files_when_asked_not_to(tmp_path):
    run = RunWriter(tmp_path, _record(), tensorboard=False)
    run.log({"epoch": 1, "train_loss": 1.5})
    assert not run.tensorboard and not list(tmp_path.glob("events.out.tfevents.*"))
