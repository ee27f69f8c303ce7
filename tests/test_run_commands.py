"""`cnnlab eval`, `predict`, `ensemble` and `runs` end to end on real small runs (real
Fashion-MNIST, real processes), each result against an independent computation, and every
user mistake as one `error:` line with exit status 2."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.train.ensemble import average_probabilities, ensemble_runs, scores
from cnnlab.train.predict import load_images
from cnnlab.train.run import RunWriter, build_from_record, open_run
from cnnlab.train.runs import evaluate_run, measured_as, run_split


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def in_process(capsys, *argv) -> subprocess.CompletedProcess:
    """The same command through ``cnnlab.cli.main`` in this process (no interpreter start)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def assert_user_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def test_split():
    return load_dataset("fashion-mnist", "test")


def _by_hand(model, images, mean, std):
    """Logits of uint8 images, normalised with plain tensor arithmetic (not the pipeline)."""
    x = images.float() / 255.0
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        return model.eval()(x)


# ---- summary of a run -------------------------------------------------------------------------
def test_summary_of_a_run_is_the_summary_of_the_model_it_trained(
    small_runs, capsys, tmp_path, monkeypatch
):
    from run_fixtures import SPEC

    ran = in_process(capsys, "summary", small_runs[0], "--format", "json")
    assert ran.returncode == 0, ran.stderr
    spec = in_process(capsys, "summary", SPEC, "--input", "1x28x28", "--classes", "10",
                      "--format", "json")  # fmt: skip
    doc, want = json.loads(ran.stdout), json.loads(spec.stdout)
    assert doc["input_shape"] == [1, 1, 28, 28] and doc["totals"] == want["totals"]
    assert [(r["path"], r["output_shapes"], r["params"]) for r in doc["rows"]] == [
        (r["path"], r["output_shapes"], r["params"]) for r in want["rows"]
    ]
    # what the run fixes cannot be asked of it; a folder that is no run says so
    assert_user_error(in_process(capsys, "summary", small_runs[0], "--input", "3x32x32"),
                      "--input: ", "is a run, whose model has its own input")  # fmt: skip
    assert_user_error(in_process(capsys, "summary", tmp_path), "not a run folder")
    # a zoo model's name stays the model beside a folder of that name
    (tmp_path / "lenet5").mkdir()
    monkeypatch.chdir(tmp_path)
    zoo = in_process(capsys, "summary", "lenet5", "--format", "json")
    assert zoo.returncode == 0 and json.loads(zoo.stdout)["model"] == "LeNet5"


# ---- eval -----------------------------------------------------------------------------------
def test_eval_json_matches_an_independent_count_on_the_test_split(small_runs, test_split, capsys):
    run = open_run(small_runs[0])
    out = cli("eval", run.path, "--weights", "final", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    logits = _by_hand(run.build_model("final"), test_split.images, run.mean, run.std)
    pred = logits.argmax(1).numpy()
    true = test_split.labels.numpy()
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (true, pred), 1)
    assert doc["n"] == 10_000 and doc["split"] == "test" and doc["weights"] == "final"
    assert doc["confusion"] == confusion.tolist()
    assert doc["top1"] == pytest.approx((pred == true).mean(), abs=1e-12)
    assert doc["top1_error"] == pytest.approx(1 - doc["top1"])
    assert doc["per_class"] == pytest.approx((confusion.diagonal() / 1000).tolist())
    top5 = logits.topk(5, dim=1).indices.numpy()
    assert doc["top5"] == pytest.approx((top5 == true[:, None]).any(1).mean(), abs=1e-12)
    loss = torch.nn.functional.cross_entropy(logits, test_split.labels).item()
    assert doc["loss"] == pytest.approx(loss, rel=1e-4)
    # the final weights' test accuracy is what training logged in its final row
    assert doc["top1"] == pytest.approx(run.final["test_top1"], abs=1e-12)
    best = json.loads(in_process(capsys, "eval", run.path, "--format", "json").stdout)
    assert best["weights"] == "best" and best["loss"] != doc["loss"]


def test_eval_val_is_exactly_the_images_the_run_held_out(small_runs):
    run = open_run(small_runs[1])  # seed 1
    assert run.config["options"] == {"seed": 1, "val_split": 0.1}
    out = cli("eval", run.path, "--split", "val", "--format", "json")
    doc = json.loads(out.stdout)
    full = load_dataset("fashion-mnist", "train")
    model = run.build_model("best")
    confusion = {}
    for seed in (1, 0):
        _, val = full.split_validation(0.1, seed=seed)
        pred = _by_hand(model, val.images, run.mean, run.std).argmax(1)
        confusion[seed] = np.zeros((10, 10), dtype=int)
        np.add.at(confusion[seed], (val.labels.numpy(), pred.numpy()), 1)
    assert doc["n"] == 6_000 and [sum(r) for r in doc["confusion"]] == [600] * 10
    assert doc["confusion"] == confusion[1].tolist()
    assert confusion[0].tolist() != confusion[1].tolist()  # seed 0 holds out other images
    # the best weights are those of the best validation accuracy the run logged
    assert doc["top1"] == pytest.approx(max(m["val_top1"] for m in run.epochs), abs=1e-12)
    train = run_split(run, "train")
    assert len(train) == 54_000 and len(set(train.labels.tolist())) == 10


def test_eval_table_fits_80_columns_with_the_confusion_matrix(small_runs):
    out = cli("eval", small_runs[0])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(small_runs[0])  # a path is as long as it is; the rest fits
    assert max(len(line) for line in lines[1:]) <= 80
    assert any(line.startswith("loss ") and "top-1 error" in line for line in lines)
    assert "confusion matrix (rows: true class, columns: predicted class)" in out.stdout
    assert any(line.startswith("9 Ankle boot") for line in lines)


# ---- predict --------------------------------------------------------------------------------
def test_predict_png_files_give_the_models_probabilities(small_runs, test_split, tmp_path, capsys):
    run = open_run(small_runs[0])
    files = []
    for i in range(3):
        grey = test_split.images[i, 0].numpy()
        Image.fromarray(grey).save(tmp_path / f"grey{i}.png")
        Image.fromarray(grey).convert("RGB").save(tmp_path / f"rgb{i}.png")  # R = G = B
        files += [tmp_path / f"grey{i}.png", tmp_path / f"rgb{i}.png"]
    out = cli("predict", run.path, *files, "--top", "10", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    probs = torch.softmax(_by_hand(run.build_model(), test_split.images[:3], run.mean, run.std), 1)
    for i in range(3):
        for entry in doc[2 * i : 2 * i + 2]:
            got = {t["class"]: t["probability"] for t in entry["top"]}
            want = dict(zip(run.classes, probs[i].tolist(), strict=True))
            assert got == pytest.approx(want, abs=1e-6)
            ranked = [t["probability"] for t in entry["top"]]
            assert ranked == sorted(ranked, reverse=True)
        assert doc[2 * i]["converted"] == "" and doc[2 * i + 1]["converted"] == "RGB -> grey"
    table = in_process(capsys, "predict", run.path, files[0], "--top", "3")
    assert table.returncode == 0
    assert len([line for line in table.stdout.splitlines() if line.startswith("  ")]) == 3


def test_colour_becomes_itu_r_601_luma_and_size_is_covered_then_centre_cropped(tmp_path):
    rgb = np.zeros((28, 40, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[:, 20, :] = (10, 250, 30)  # a column that the centre crop keeps (cols 6..33)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    images, notes = load_images([tmp_path / "wide.png"], (1, 28, 28))
    assert images.shape == (1, 1, 28, 28) and images.dtype == torch.uint8
    assert notes == ["RGB -> grey, 40x28 -> 28x28"]
    # L = 0.299 R + 0.587 G + 0.114 B (Pillow rounds its fixed-point form)
    assert abs(int(images[0, 0, 0, 0]) - (0.299 * 200 + 0.587 * 100 + 0.114 * 50)) <= 0.5
    assert abs(int(images[0, 0, 0, 14]) - (0.299 * 10 + 0.587 * 250 + 0.114 * 30)) <= 0.5
    assert int(images[0, 0, 0, 13]) != int(images[0, 0, 0, 14])  # column 20 sits at 20 - 6
    grey = np.arange(14 * 14, dtype=np.uint8).reshape(14, 14)
    Image.fromarray(grey).save(tmp_path / "small.png")
    images, notes = load_images([tmp_path / "small.png"], (3, 28, 28))
    assert images.shape == (1, 3, 28, 28) and notes == ["L -> RGB, 14x14 -> 28x28"]
    assert torch.equal(images[0, 0], images[0, 1]) and torch.equal(images[0, 0], images[0, 2])
    with pytest.raises(CnnlabError, match="4-channel inputs"):
        load_images([tmp_path / "small.png"], (4, 28, 28))


def test_predict_refuses_what_it_may_not_convert_and_files_that_are_no_images(
    small_runs, tmp_path, capsys
):
    Image.fromarray(np.zeros((56, 56, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    assert_user_error(
        cli("predict", small_runs[0], tmp_path / "big.jpg", "--strict"),
        "big.jpg: 56x56 RGB image; the model expects 28x28 grey images (1x28x28",
    )
    (tmp_path / "notes.png").write_text("not a picture")
    assert_user_error(
        in_process(capsys, "predict", small_runs[0], tmp_path / "big.jpg", tmp_path / "notes.png"),
        f"{tmp_path / 'notes.png'}: not an image",
    )
    missing = in_process(capsys, "predict", small_runs[0], tmp_path / "nope.png")
    assert_user_error(missing, "nope.png: no such file")
    top0 = in_process(capsys, "predict", small_runs[0], tmp_path / "big.jpg", "--top", "0")
    assert_user_error(top0, "--top '0'")


# ---- ensemble -------------------------------------------------------------------------------
def test_averaged_probabilities_and_their_scores_by_hand():
    a = torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    b = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.1, 0.7]])
    mean = average_probabilities([a, b])
    assert torch.allclose(mean, torch.tensor([[0.3, 0.3, 0.4], [0.4, 0.2, 0.4]]))
    s = scores(torch.tensor([[0.3, 0.25, 0.45], [0.5, 0.2, 0.3]]), torch.tensor([0, 0]))
    assert (s.top1, s.top5, s.n) == (0.5, 1.0, 2)
    assert s.loss == pytest.approx(-(math.log(0.3) + math.log(0.5)) / 2)


def test_ensemble_averages_softmax_outputs_as_computed_by_hand(small_runs, test_split, capsys):
    runs = [open_run(p) for p in small_runs]
    result = ensemble_runs(runs)
    assert result.probabilities.shape == (10_000, 10)
    for i in range(6):  # image by image: softmax of each model's logits, then the mean
        expected = [0.0] * 10
        for run in runs:
            z = _by_hand(run.build_model(), test_split.images[i : i + 1], run.mean, run.std)
            z = z[0].tolist()
            top = max(z)
            e = [math.exp(v - top) for v in z]
            for k in range(10):
                expected[k] += e[k] / sum(e) / len(runs)
        assert result.probabilities[i].tolist() == pytest.approx(expected, abs=1e-6)
    pred = result.probabilities.argmax(1)
    assert result.ensemble.top1 == (pred == test_split.labels).double().mean().item()

    out = cli("ensemble", *small_runs, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ensemble"]["top1"] == result.ensemble.top1
    for member, run in zip(doc["members"], runs, strict=True):
        alone = evaluate_run(run, "test")
        assert member["top1"] == alone.top1 and member["top5"] == alone.top5
    # three differently seeded networks beat their average member
    assert doc["ensemble"]["top1"] > doc["mean_member"]["top1"]
    table = in_process(capsys, "ensemble", *small_runs)
    lines = table.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and lines[-1].startswith("ensemble of 3")


def _untrained_run(path, **changes):
    """A real run folder (written by RunWriter) of an untrained network, for the refusals."""
    record = {
        "kind": "notation",
        "target": "conv3-4-relu-gap-fc-10",
        "kwargs": {},
        "in_channels": 1,
        "input_size": [28, 28],
        "num_classes": 10,
        "classes": list(load_dataset("fashion-mnist", "test").classes),
        "mean": [0.286],
        "std": [0.353],
        "dataset": "fashion-mnist",
        **changes,
    }
    writer = RunWriter(path, record)
    writer.write_config({"recipe": {"name": "none"}, "options": {"seed": 0, "val_split": 0.1}})
    model = build_from_record(record)
    writer.save_weights(model, "best")
    writer.save_weights(model, "final")
    writer.log({"final": True})
    return path


def test_ensemble_refuses_runs_that_cannot_be_averaged_naming_both(small_runs, tmp_path, capsys):
    other_shape = _untrained_run(tmp_path / "big", input_size=[32, 32])
    assert_user_error(
        cli("ensemble", small_runs[0], other_shape),
        f"{small_runs[0]} takes 1x28x28",
        f"{other_shape} takes 1x32x32",
    )
    classes = list(open_run(small_runs[0]).classes)
    swapped = _untrained_run(tmp_path / "swapped", classes=classes[1:] + classes[:1])
    assert_user_error(
        in_process(capsys, "ensemble", small_runs[1], swapped),
        str(small_runs[1]),
        str(swapped),
        "class list",
    )
    assert_user_error(in_process(capsys, "ensemble", small_runs[0]), "at least 2 runs")


# ---- runs -----------------------------------------------------------------------------------
def test_runs_lists_each_run_and_counts_the_folders_that_are_not(small_runs, tmp_path, capsys):
    for p in small_runs:
        shutil.copytree(p, tmp_path / p.name)
    (tmp_path / "notes").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.toml").write_text("recipe = 1\n")
    (tmp_path / "README.txt").write_text("a plain file is not a folder\n")
    out = cli("runs", tmp_path, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [r["path"] for r in doc["runs"]] == [str(tmp_path / p.name) for p in small_runs]
    assert sorted(s["path"] for s in doc["skipped"]) == [
        str(tmp_path / "broken"),
        str(tmp_path / "notes"),
    ]
    for row, path in zip(doc["runs"], small_runs, strict=True):
        run = open_run(path)
        assert row["best_val_top1"] == max(m["val_top1"] for m in run.epochs)
        assert row["test_top1"] == run.final["test_top1"] and row["epochs"] == 1
        assert row["recipe"] == "test" and row["dataset"] == "fashion-mnist"
    table = in_process(capsys, "runs", tmp_path)
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and max(map(len, lines[1:])) <= 80  # [0] names the folder
    assert lines[0] == f"3 runs in {tmp_path}, all on fashion-mnist"
    assert lines[-1] == "2 folder(s) skipped, not runs: broken, notes"
    assert in_process(capsys, "runs", tmp_path / "notes").stdout.startswith("no runs in")


# ---- user mistakes ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def damaged(small_runs, tmp_path_factory):
    """Copies of a run: one without best weights, one with a pickle, one with garbage."""
    root = tmp_path_factory.mktemp("damaged")
    for name in ("missing", "pickle", "garbage"):
        shutil.copytree(small_runs[2], root / name)
    (root / "missing" / "weights" / "best.safetensors").unlink()
    torch.save({"c1.weight": torch.zeros(3)}, root / "pickle" / "weights" / "best.safetensors")
    (root / "garbage" / "weights" / "best.safetensors").write_bytes(bytes(range(256)) * 8)
    return root


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (("eval", "{tmp}"), ["{tmp}: not a run folder"]),
        (("eval", "{tmp}/absent"), ["{tmp}/absent: does not exist"]),
        (("eval", "{run}", "--split", "dev"), ["--split 'dev'", "test, val, train"]),
        (("eval", "{run}", "--weights", "last"), ["--weights 'last'", "best, final"]),
        (("eval", "{run}", "--format", "xml"), ["--format 'xml'", "table, json"]),
        (("predict", "{run}", "{tmp}/x.png", "--format", "yaml"), ["--format 'yaml'"]),
        (("runs", "{tmp}/absent"), ["{tmp}/absent: does not exist"]),
        (("runs", "{tmp}", "--format", "csv"), ["--format 'csv'"]),
        (("eval", "{damaged}/missing"), ["{damaged}/missing/weights/best.safetensors: no such"]),
        (
            ("eval", "{damaged}/pickle"),
            ["{damaged}/pickle/weights/best.safetensors: refused", "never unpickles"],
        ),
        (("eval", "{damaged}/garbage"), ["{damaged}/garbage/weights/best.safetensors: damaged"]),
        (("predict", "{damaged}/pickle", "{tmp}/x.png"), ["pickle/weights/best.safetensors"]),
        (("ensemble", "{run}", "{damaged}/garbage"), ["garbage/weights/best.safetensors"]),
        (("eval", "{damaged}/pickle", "--weights", "final", "--split", "nope"), ["--split"]),
    ],
)
def test_each_user_mistake_is_one_error_line_and_exit_status_2(
    small_runs, damaged, tmp_path, capsys, argv, fragments
):
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "x.png")
    names = {"run": small_runs[0], "tmp": tmp_path, "damaged": damaged}
    out = in_process(capsys, *(a.format(**names) for a in argv))
    assert_user_error(out, *(f.format(**names) for f in fragments))


def test_a_user_mistake_ends_the_process_with_one_line_and_status_2(damaged):
    out = cli("eval", damaged / "pickle")
    assert_user_error(out, f"{damaged / 'pickle' / 'weights' / 'best.safetensors'}: refused")
    assert out.stdout == ""


# ---- a run written by cnnlab train itself -------------------------------------------------------
# In both precisions, on every machine: `cnnlab eval` measures in the run's own precision and
# memory format (bf16 autocast rounds apart from fp32, enough to move an accuracy).
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_cnnlab_train_run_is_evaluated_on_exactly_its_validation_images(
    tmp_path, capsys, precision
):
    run_dir = tmp_path / "trained"
    trained = cli(
        "train", "conv3-8-relu-maxpool-fc-10", "--data", "fashion-mnist", "--recipe", "fast",
        "--set", "iterations=30", "--set", "epochs=none", "--batch-size", "64", "--seed", "3",
        "--val-split", "0.05", "--out", run_dir, "--quiet", "--precision", precision,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    run = open_run(run_dir)
    assert measured_as(run)["precision"] == precision
    assert measured_as(run)["channels_last"] == (precision == "bf16")
    val = in_process(capsys, "eval", run_dir, "--split", "val", "--format", "json")
    doc = json.loads(val.stdout)
    assert doc["n"] == 3_000  # 5% of 60,000, held out with seed 3
    assert doc["top1"] == pytest.approx(max(m["val_top1"] for m in run.epochs), abs=1e-12)
    assert doc["loss"] == pytest.approx(run.epochs[-1]["val_loss"], rel=1e-5)
    test = json.loads(in_process(capsys, "eval", run_dir, "--format", "json").stdout)
    assert test["n"] == 10_000
    listed = json.loads(in_process(capsys, "runs", tmp_path, "--format", "json").stdout)
    assert [(r["recipe"], r["epochs"]) for r in listed["runs"]] == [("fast", 1)]
    assert listed["runs"][0]["test_top1"] == pytest.approx(run.final["test_top1"])


# ---- flip test-time augmentation follows the run -----------------------------------------------
def test_predict_and_ensemble_of_a_run_measured_with_flips_average_image_and_mirror(
    small_runs, test_split, tmp_path
):
    import tomllib

    import tomli_w

    from cnnlab.train.predict import predict_files
    from cnnlab.train.runs import measures_flipped

    flipped = []
    for src in small_runs[:2]:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        config = tomllib.loads((dst / "config.toml").read_text())
        config["recipe"]["test_flip"] = True
        (dst / "config.toml").write_text(tomli_w.dumps(config))
        flipped.append(open_run(dst))
    assert not measures_flipped(open_run(small_runs[0])) and measures_flipped(flipped[0])
    mnist = type("Info", (), {"hflip": False})()
    assert not measures_flipped(flipped[0], mnist)  # never for data whose mirror is no class

    run = flipped[0]
    Image.fromarray(test_split.images[0, 0].numpy()).save(tmp_path / "one.png")
    model, images = run.build_model(), test_split.images[:1]
    z = (_by_hand(model, images, run.mean, run.std)
         + _by_hand(model, images.flip(-1), run.mean, run.std)) / 2  # fmt: skip
    want = dict(zip(run.classes, torch.softmax(z, 1)[0].tolist(), strict=True))
    (pred,) = predict_files(run, [tmp_path / "one.png"], top=10)
    assert dict(pred.top) == pytest.approx(want, abs=1e-6)
    plain = dict(predict_files(open_run(small_runs[0]), [tmp_path / "one.png"], top=10)[0].top)
    assert plain != pytest.approx(want, abs=1e-6)  # the mirror changed the answer

    result = ensemble_runs(flipped)
    expected = torch.zeros(10)
    for r in flipped:
        m = r.build_model()
        z = (_by_hand(m, images, r.mean, r.std) + _by_hand(m, images.flip(-1), r.mean, r.std)) / 2
        expected += torch.softmax(z, 1)[0] / 2
    assert result.probabilities[0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
