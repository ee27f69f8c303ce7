"""The `cnnlab` command: the map of the product, `models`, `show`, and how user mistakes end."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cnnlab.cli import main


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *argv], capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("models", "show"):
        assert cmd in out.stdout


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: cnnlab" in capsys.readouterr().out


def test_models_lists_the_zoo_with_numbers(capsys):
    assert main(["models", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["alexnet"]["params"] == 60_965_224
    assert rows["vgg_d"]["aliases"] == ["vgg16"]
    assert rows["resnet50"]["input"] == "224x224x3"
    assert rows["lenet5"]["classes"] == 10


def test_models_glob_and_markdown(capsys):
    assert main(["models", "resnet1*", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| resnet18 |" in out and "| resnet110 |" in out and "alexnet" not in out
    assert "11,689,512" in out


def test_models_no_match_is_a_user_error(capsys):
    assert main(["models", "transformer*"]) == 2
    assert capsys.readouterr().err.startswith("error: no model matches 'transformer*'")


def test_show_zoo_model(capsys):
    assert main(["show", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "60,850 parameters" in out
    assert "input 32x32x1" in out


def test_show_spec_and_input(capsys):
    assert main(["show", "conv3-16, relu, maxpool, fc-10", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    # conv 3*3*1*16+16 = 160, fc 14*14*16*10+10 = 31,370
    assert f"{160 + 31_370:,} parameters" in out
    assert "input 28x28x1" in out


def test_show_option_reaches_the_builder(capsys):
    assert main(["show", "googlenet", "--option", "aux_logits=True", "--depth", "1"]) == 0
    assert "13,378,280 parameters" in capsys.readouterr().out


def test_show_file_factory(tmp_path, capsys):
    f = tmp_path / "mine.py"
    f.write_text(
        textwrap.dedent(
            """
            import torch.nn as nn
            def make():
                return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
            """
        )
    )
    assert main(["show", f"{f}:make", "--input", "1x8x8"]) == 0
    assert "40 parameters" in capsys.readouterr().out
    assert main(["show", f"{f}:nope", "--input", "1x8x8"]) == 2
    assert "has no 'nope'; callables there: make" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "resnet5"], "unknown model 'resnet5'; did you mean"),
        (["show", "alexnet", "--input", "3x224"], "expected CxHxW"),
        (["show", "alexnet", "--input", "3x32x32"], "alexnet"),
        (["show", "missing.py:make"], "missing.py: no such file"),
        (["show", "conv3-64, frob"], "frob"),
    ],
)
def test_user_mistakes_are_one_line_and_status_2(argv, message):
    out = run(*argv)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ")
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_the_program_freezes_its_objects_at_the_end_and_a_caller_keeps_its_collector():
    # run as the program (no argv), main leaves the exit nothing to walk for cycles
    code = (
        "import gc, sys\n"
        "from cnnlab.cli import main\n"
        "assert main(['models']) == 0\n"
        "called = gc.get_freeze_count()\n"
        "sys.argv = ['cnnlab', 'models']\n"
        "assert main() == 0\n"
        "print('frozen', called, gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stderr.strip().splitlines()[-1] == "frozen 0 True", out.stderr
