"""`cnnlab summary`, `cnnlab arith`, `cnnlab lecture` and the renderers (a few golden texts)."""

from __future__ import annotations

import csv
import io
import json
import textwrap

import pytest
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.analysis.render import FORMATS, render
from cnnlab.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _tiny() -> nn.Module:
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 4, 3, padding=1))
    net.add_module("relu1", nn.ReLU(inplace=True))
    net.add_module("pool1", nn.MaxPool2d(2))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(4 * 4 * 4, 10))
    return net


def test_lecture_renderer_golden():
    text = render(analyze(_tiny(), (3, 8, 8)), "lecture")
    assert text == textwrap.dedent(
        """\
        INPUT: [8x8x3] memory: 8*8*3=192 params: 0
        CONV3-4: [8x8x4] memory: 8*8*4=256 params: (3*3*3)*4 = 108 (+4 biases)
        POOL2: [4x4x4] memory: 4*4*4=64 params: 0
        FC: [1x1x10] memory: 10 params: 4*4*4*10 = 640 (+10 biases)
        TOTAL memory: 522 * 4 bytes ~= 0 MB / image (the rows above, forward only; ~x2 for backward)
        TOTAL params: 762 parameters (762, 14 of them biases)
        TOTAL MACs: 7.55K (7,552; FLOPs = 2 x MACs)
        """
    )


def test_markdown_and_csv_golden_rows():
    a = analyze(_tiny(), (3, 8, 8))
    md = render(a, "markdown").splitlines()
    assert md[2] == (
        "| Layer | Type | Filter/stride | Volume WxHxD | Output NxCxHxW | Params | MACs | "
        "Act. values | RF/jump | Fit |"
    )
    assert md[4] == (
        "| `conv1` | Conv2d | 3/1 p1 | 8x8x4 | 1x4x8x8 | 112 | 6,912 | 256 | 3/1 | exact |"
    )
    assert "MACs: 7,552 (7.55K) per image; FLOPs = 2 x MACs = 15.10K" in render(a, "markdown")
    rows = list(csv.DictReader(io.StringIO(render(a, "csv"))))
    assert [r["path"] for r in rows] == ["conv1", "relu1", "pool1", "flatten", "fc"]
    assert rows[2]["kernel"] == "2" and rows[2]["rf_size"] == "4" and rows[2]["rf_jump"] == "2"
    assert rows[4]["macs"] == "640" and rows[4]["flops"] == "1280"


def test_every_format_states_its_conventions():
    a = analyze(_tiny(), (3, 8, 8))
    for fmt in FORMATS:
        text = render(a, fmt)
        assert "FLOPs = 2 x MACs" in text or fmt == "csv", fmt
    data = json.loads(render(a, "json"))
    assert data["totals"]["macs"] == 7552 and data["totals"]["flops"] == 15104
    assert "macs" in data["conventions"] and len(data["rows"]) == 5


def test_summary_zoo_model_formats(capsys):
    code, out, err = run(capsys, "summary", "lenet5", "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["totals"]["params"] == 60_850 and data["totals"]["macs"] == 326_520
    code, out, _ = run(capsys, "summary", "vgg16", "--format", "lecture")
    assert code == 0
    assert "CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728" in out
    assert "TOTAL memory: 15.2M" in out
    code, out, _ = run(capsys, "summary", "resnet18", "--depth", "1", "--width", "200")
    assert code == 0 and "layer4" in out and "layer4.0" not in out
    assert "MACs: 1,814,073,344" in out


def test_summary_spec_and_file(capsys, tmp_path):
    code, out, _ = run(
        capsys, "summary", "conv3-8, relu, maxpool, fc-10", "--input", "1x28x28", "--format", "csv"
    )
    assert code == 0 and "Conv2d" in out
    f = tmp_path / "mynet.py"
    f.write_text(
        textwrap.dedent(
            """
            import torch, torch.nn as nn, torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 4, 3)
                def forward(self, x):
                    return F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1)
            def make():
                return Net()
            """
        )
    )
    code, out, _ = run(capsys, "summary", f"{f}:make", "--input", "3x16x16", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [r["type"] for r in data["rows"]] == ["Conv2d", "relu", "adaptive_avg_pool2d",
                                                 "flatten"]  # fmt: skip
    assert data["totals"]["uncounted"] == {}


@pytest.mark.parametrize(
    "argv,message",
    [
        (("summary", "resnet18", "--input", "3x224"), "expected CxHxW"),
        (("summary", "resnet99"), "unknown model 'resnet99'"),
        (("summary", "nofile.py:make", "--input", "3x8x8"), "no such file"),
        (("summary", "resnet18", "--strict"), "conv1: (224 - 7 + 2*3)/2 + 1 = 112.50"),
        (("summary", "lenet5", "--batch", "0"), "--batch"),
    ],
)
def test_summary_bad_input_is_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_summary_input_too_small_names_the_layer(capsys, tmp_path):
    f = tmp_path / "pools.py"
    f.write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.MaxPool2d(2))\n"
    )
    code, out, err = run(capsys, "summary", f"{f}:make", "--input", "3x5x5")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: 2 (MaxPool2d): (1 - 2 + 2*0)/2 + 1 = 0.50")
    assert "the volume vanishes" in err


def test_summary_factory_missing(capsys, tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def other():\n    return None\n")
    code, _, err = run(capsys, "summary", f"{f}:make", "--input", "3x8x8")
    assert code == 2 and "has no 'make'" in err


def test_arith(capsys):
    code, out, _ = run(capsys, "arith", "--input", "7", "--filter", "3", "--stride", "2")
    assert code == 0
    assert "(7 - 3 + 2*0)/2 + 1 = 3" in out and "-> 3x3 output (exact fit)" in out
    code, out, err = run(capsys, "arith", "--input", "7", "--filter", "3", "--stride", "3")
    assert code == 2 and out == ""
    assert (
        "(7 - 3 + 2*0)/3 + 1 = 2.33 is not a whole number: a 3x3 filter at stride 3 does not "
        "fit a 7x7 input" in err
    )
    assert "Strides that fit: 1, 2, 4. Paddings that fit stride 3: 1 (gives 3x3)." in err
    code, out, _ = run(capsys, "arith", "--input", "32", "--filter", "5", "--pad", "2",
                       "--depth", "3", "--filters", "10", "--same")  # fmt: skip
    assert "= 760" in out and "32x32x10" in out and "pad (F-1)/2 = 2" in out
    # A pool's stride defaults to its size: 3x3/3 on 55 does not tile ((55 - 3)/3 + 1 = 18.33).
    code, out, err = run(capsys, "arith", "--input", "55", "--filter", "3", "--pool")
    assert code == 2 and "(55 - 3 + 2*0)/3 + 1 = 18.33" in err
    code, out, _ = run(capsys, "arith", "--input", "55", "--filter", "3", "--stride", "2",
                       "--pool")  # fmt: skip
    assert code == 0 and "27x27 output" in out and "no parameters" in out


def test_lecture_command(capsys):
    code, out, _ = run(capsys, "lecture", "--table", "vgg16")
    assert code == 0
    assert "LECTURE WRONG" in out and "15.2M (15,237,608)" in out and "24M" in out
    code, out, _ = run(capsys, "lecture", "--table", "googlenet", "--format", "json")
    rows = json.loads(out)[0]["rows"]
    assert sum(r["status"] == "lecture wrong" for r in rows) == 5
    code, _, err = run(capsys, "lecture", "--table", "nope")
    assert code == 2 and "one of" in err
