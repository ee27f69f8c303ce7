"""The README's promises under a user's mistakes: typed options, no silent no-ops, one
``error:`` line (never a traceback) for a mistake, bounded sizes, the habits of torchvision
users.  Each test here failed before the change it covers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnlab import build_spec
from cnnlab.cli import main
from cnnlab.data import Augment, BatchPipeline, load_dataset
from cnnlab.errors import CnnlabError, DataError, SpecError
from cnnlab.zoo import create_model, list_models
from cnnlab.zoo.target import load_target, parse_options


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must end with status 2 and exactly one `error:` line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- options are typed by the builder's signature ---------------------------------------------


@pytest.mark.parametrize("text", ["false", "False", "no", "NO", "0"])
def test_a_false_option_text_means_false(text):
    with torch.device("meta"):
        model = load_target("googlenet", options=parse_options([f"aux_logits={text}"])).model
        plain = create_model("googlenet")
    assert _params(model) == _params(plain) == 6_998_552  # no auxiliary heads


@pytest.mark.parametrize("text", ["true", "YES", "1"])
def test_a_true_option_text_means_true(text):
    with torch.device("meta"):
        model = load_target("googlenet", options=parse_options([f"aux_logits={text}"])).model
    assert _params(model) == 13_378_280


def test_option_texts_outside_the_bool_words_are_refused():
    for text in ("off", "on", "nope", "2", ""):
        with pytest.raises(CnnlabError, match=r"norm_before_pool=.*expected true or false"):
            load_target("alexnet", options=parse_options([f"norm_before_pool={text}"]))
    with torch.device("meta"):
        no = load_target("alexnet", options=parse_options(["norm_before_pool=no"]))
        yes = load_target("alexnet", options=parse_options(["norm_before_pool=yes"]))
    assert no.options == {"norm_before_pool": False}
    assert yes.options == {"norm_before_pool": True}


def test_the_python_api_refuses_a_string_where_a_bool_is_expected():
    with pytest.raises(CnnlabError, match=r"zero_init_residual='false': expected true or false"):
        create_model("resnet50", zero_init_residual="false")
    with pytest.raises(CnnlabError, match=r"groups='2': expected int [|] none"):
        create_model("alexnet", groups="2")
    with torch.device("meta"):
        assert create_model("alexnet", groups=None) is not None


def test_typed_options_of_other_kinds():
    with torch.device("meta"):
        z = load_target("zfnet", options=parse_options(["conv345=512,1024,512"])).model
        assert z.conv3.out_channels == 512 and z.conv4.out_channels == 1024
        a = load_target("alexnet", options=parse_options(["groups=none"]))
        assert a.options == {"groups": None}
    with pytest.raises(CnnlabError, match=r"conv345='1,2': expected 3 int values"):
        load_target("zfnet", options=parse_options(["conv345=1,2"]))


def test_an_option_that_repeats_a_flag_is_refused_in_one_line(capsys):
    line = _error_line(capsys, ["summary", "lenet5", "--option", "num_classes=10"])
    assert "--classes" in line


def test_options_for_a_file_target_are_refused(tmp_path, capsys):
    f = tmp_path / "net.py"
    f.write_text("from torch import nn\ndef make():\n    return nn.Conv2d(1, 2, 3)\n")
    line = _error_line(capsys, ["summary", f"{f}:make", "--input", "1x8x8", "--option", "a=1"])
    assert "--option applies to zoo models" in line
    line = _error_line(capsys, ["summary", f"{f}:make", "--input", "1x8x8", "--classes", "3"])
    assert "--classes 3" in line


# ---- keyword typos ------------------------------------------------------------------------------


def test_build_spec_keyword_typos_are_errors_with_a_suggestion():
    with pytest.raises(
        SpecError, match=r"unknown keyword 'in_chanels'; did you mean 'in_channels'"
    ):
        build_spec("conv3-8-relu-gap-fc-10", in_chanels=1)
    with pytest.raises(SpecError, match=r"'input_sise'; did you mean 'input_size'"):
        build_spec("conv3-8-relu-fc-10", input_sise=28)
    # counts the text uses are still counts
    net = build_spec("(conv3-8-relu)*N-gap-fc-10", in_channels=1, N=2)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 2


# ---- names as torchvision and timm users type them ----------------------------------------------


def test_aliases_and_case_find_models(capsys):
    assert list_models("vgg1?") == ["vgg_a", "vgg_b", "vgg_d", "vgg_e"]
    assert "vgg_d_bn" in list_models("vgg1*")
    assert list_models("VGG16") == ["vgg_d"]
    assert main(["models", "vgg16", "--format", "json"]) == 0
    assert '"vgg_d"' in capsys.readouterr().out
    with torch.device("meta"):
        assert _params(create_model("VGG16")) == 138_357_544


# ---- the user's own code: one line with its file and line ---------------------------------------

_USER_CODE = """\
import torch
from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())


def boom():
    return 1 / 0


def needs(width):
    return nn.Conv2d(1, width, 3)


instance = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
scripted = torch.jit.script(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()))


def slow():
    import pathlib
    import time

    pathlib.Path(__file__).with_suffix(".ready").touch()  # the test presses Ctrl-C now
    time.sleep(120)
"""


@pytest.fixture
def user_file(tmp_path) -> Path:
    f = tmp_path / "user_net.py"
    f.write_text(_USER_CODE)
    return f


def test_a_factory_that_raises_is_one_line_with_its_file_and_line(user_file, capsys):
    line = _error_line(capsys, ["summary", f"{user_file}:boom", "--input", "1x8x8"])
    assert "ZeroDivisionError: division by zero" in line
    assert f"{user_file}:10" in line


def test_traceback_flag_shows_the_whole_traceback(user_file, capsys):
    assert main(["summary", f"{user_file}:boom", "--input", "1x8x8", "--traceback"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "return 1 / 0" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_syntax_and_import_errors_in_a_user_file(tmp_path, capsys):
    bad = tmp_path / "syn.py"
    bad.write_text("def make(:\n    pass\n")
    line = _error_line(capsys, ["summary", f"{bad}:make", "--input", "1x8x8"])
    assert "does not import: SyntaxError" in line and f"{bad}:1" in line
    imp = tmp_path / "imp.py"
    imp.write_text("import cnnlab_no_such_package\n")
    line = _error_line(capsys, ["summary", f"{imp}:make", "--input", "1x8x8"])
    assert "ModuleNotFoundError" in line and f"{imp}:1" in line


def test_an_instance_is_accepted_a_factory_with_arguments_and_script_refused(user_file, capsys):
    assert main(["summary", f"{user_file}:instance", "--input", "1x8x8", "--format", "csv"]) == 0
    assert "Conv2d" in capsys.readouterr().out
    line = _error_line(capsys, ["summary", f"{user_file}:needs", "--input", "1x8x8"])
    assert "needs() needs arguments" in line
    line = _error_line(capsys, ["summary", f"{user_file}:scripted", "--input", "1x8x8"])
    assert "TorchScript" in line


def test_ctrl_c_ends_with_one_line_and_status_130(user_file):
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "summary", f"{user_file}:slow", "--input", "1x8x8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's foreground job: a suite started in the background (`make test &`)
        # ignores SIGINT, every child inherits that, and Python then installs no Ctrl-C
        # handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    ready = user_file.with_suffix(".ready")
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists(), proc.communicate()
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted"], err


# ---- sizes with bounds ---------------------------------------------------------------------------


def test_absurd_input_sizes_are_refused_in_one_line(capsys):
    line = _error_line(capsys, ["summary", "lenet5", "--input", "3x99999999999999999999x9"])
    assert "larger than any size torch can index" in line


def test_show_builds_on_meta_so_a_huge_input_allocates_nothing(capsys):
    assert main(["show", "vgg16", "--input", "3x8192x8192", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    # the first fc reads a 256x256x512 volume: 34 G weights, never allocated
    assert "33,554,432" in out or "in_features=33554432" in out


@pytest.fixture
def folder(tmp_path) -> Path:
    for c in ("a", "b"):
        (tmp_path / "imgs" / c / "nested").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / c / "nested" / "deep.png")
    return tmp_path / "imgs"


def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_decoding(folder, capsys):
    line = _error_line(capsys, ["data", "info", f"folder:{folder}", "--image-size", "100000"])
    assert "image_size 100000x100000 would need about" in line and "available" in line


def test_data_show_refuses_what_would_do_nothing_or_too_much(capsys):
    line = _error_line(capsys, ["data", "show", "fashion-mnist", "--n", "1000000"])
    assert "expected 1 to 1024 images" in line
    assert "--columns 0" in _error_line(capsys, ["data", "show", "fashion-mnist", "--columns", "0"])
    line = _error_line(capsys, ["data", "show", "fashion-mnist", "--erase", "0.5"])
    assert "part of --augment" in line
    line = _error_line(capsys, ["data", "list", "--data-dir", "/no/such/dir"])
    assert "no such folder" in line


def test_a_data_dir_that_does_not_exist_is_refused_before_training(small_runs, capsys):
    argv = ["train", "lenet5", "--data", "fashion-mnist", "--data-dir", "/no/such/dir"]
    assert "data_dir /no/such/dir: no such folder" in _error_line(capsys, argv)
    run = small_runs[0]
    line = _error_line(capsys, ["eval", str(run), "--data-dir", "/no/such/dir"])
    assert "no such folder" in line


# ---- datasets and pipelines as torchvision users expect -----------------------------------------


def test_load_dataset_takes_a_path_or_a_folder_text(folder):
    by_path = load_dataset(folder)
    by_text = load_dataset(str(folder))
    assert len(by_path) == len(by_text) == 8  # nested images of a class count for it
    assert by_path.classes == ("a", "b")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(str(folder / "missing"))


def test_batch_pipeline_is_iterable_and_checks_its_arguments(folder):
    ds = load_dataset(folder)
    pipe = BatchPipeline(ds, 3, seed=1)
    first, second = [y.tolist() for _, y in pipe], [y.tolist() for _, y in pipe]
    assert first == [y.tolist() for _, y in pipe.epoch(0)]
    assert second == [y.tolist() for _, y in pipe.epoch(1)]
    assert sum(len(b) for b in first) == len(ds)
    with pytest.raises(DataError, match="device 'gpu'"):
        BatchPipeline(ds, 2, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="sees no CUDA GPU"):
            BatchPipeline(ds, 2, device="cuda")
    with pytest.raises(DataError, match="augment 'flip': expected an Augment"):
        BatchPipeline(ds, 2, augment="flip")
    with pytest.raises(DataError, match="shard is empty"):
        BatchPipeline(ds, 1, rank=9, world_size=10)
    assert BatchPipeline(ds, 2, augment=Augment(flip=True)) is not None


def test_user_frame_is_the_users_line_not_cnnlabs(tmp_path):
    f = tmp_path / "deep.py"
    f.write_text(
        textwrap.dedent(
            """\
            def helper():
                raise ValueError("bad width")


            def make():
                return helper()
            """
        )
    )
    with pytest.raises(CnnlabError, match=rf"ValueError: bad width at {f}:2"):
        load_target(f"{f}:make", input_size=(1, 8, 8))


# ---- tables a person can read ---------------------------------------------------------------


def _summary_lines(*argv: str, columns: str | None = None) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = columns
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "summary", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize("width", [80, 100, 120])
def test_piped_summary_honours_columns_and_never_cuts_a_number(width):
    lines = _summary_lines("alexnet", columns=str(width))
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for number in ("37,752,832", "105,415,200", "60,965,224"):  # fc6 params, conv1 MACs, total
        assert number in text
    assert "…" not in text
    if width < 120:
        assert "Columns left out to fit" in text


def test_columns_choose_what_the_table_shows(capsys):
    assert main(["summary", "lenet5", "--columns", "name,params", "--width", "60"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "Layer" in line)
    assert "Params" in header and "MACs" not in header and "Type" not in header
    line = _error_line(capsys, ["summary", "lenet5", "--columns", "name,parms"])
    assert "did you mean 'params'" in line
    assert "--width 0" in _error_line(capsys, ["summary", "lenet5", "--width", "0"])


# ---- the CLI analyzes what the API analyzes ---------------------------------------------------

_ND = """\
from torch import nn


def conv1d():
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU())


def conv3d():
    return nn.Sequential(nn.Conv3d(1, 2, 3), nn.ReLU())


def mlp():
    return nn.Sequential(nn.Linear(784, 10))


def sequence():
    return nn.Sequential(nn.Linear(16, 4))
"""


@pytest.mark.parametrize(
    "factory,size,output",
    [
        ("conv1d", "2x20", "1x4x18"),
        ("conv3d", "1x4x6x6", "1x2x2x4x4"),
        ("mlp", "784", "1x10"),
        ("sequence", "8x16", "1x8x4"),
    ],
)
def test_input_of_any_rank_for_a_file_target(tmp_path, capsys, factory, size, output):
    f = tmp_path / "nd.py"
    f.write_text(_ND)
    assert main(["summary", f"{f}:{factory}", "--input", size, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows[-1].split(",")[10] == output  # output_shape of the last layer


def test_an_image_model_refuses_other_ranks(capsys):
    line = _error_line(capsys, ["summary", "lenet5", "--input", "1x2x28x28"])
    assert "takes an image, CxHxW" in line


def test_a_usage_mistake_is_one_error_line_too(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summary", "lenet5", "--batch", "1e20"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: cnnlab summary: argument --batch: invalid int value: '1e20' "
        "(see cnnlab summary --help)"
    ]


_TWO_INPUTS = """\
from torch import nn


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.emb = nn.Embedding(10, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, image, label):
        return self.fc(self.conv(image).mean((2, 3)) + self.emb(label))


def make():
    return Two()
"""


def test_a_model_with_several_inputs_from_the_cli(tmp_path, capsys):
    f = tmp_path / "two.py"
    f.write_text(_TWO_INPUTS)
    argv = ["summary", f"{f}:make", "--input", "3x16x16", "--input", "1", "--format", "csv"]
    assert main([*argv, "--dtype", "float32,int64"]) == 0
    rows = {r.split(",")[0]: r.split(",") for r in capsys.readouterr().out.splitlines()[1:]}
    assert rows["emb"][12] == "80" and rows["fc"][10] == "1x1x4"  # params; output shape
    line = _error_line(capsys, [*argv, "--dtype", "float32,int64,int64"])
    assert "one per --input (2)" in line
    line = _error_line(capsys, ["summary", "lenet5", "--input", "28", "--input", "2"])
    assert "only file.py:factory models take several inputs" in line


def test_a_failing_forward_on_a_grey_image_gets_no_batch_hint(tmp_path, capsys):
    """The torchinfo-habit hint (batch inside the size) only where dropping the 1 runs."""
    f = tmp_path / "broken.py"
    f.write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n"
        "        raise RuntimeError('my forward is broken')\n\n\ndef make():\n    return Net()\n"
    )
    line = _error_line(capsys, ["summary", f"{f}:make", "--input", "1x28x28"])
    assert "my forward is broken" in line and f"{f}:6" in line
    assert "without the batch" not in line
    assert main(["summary", f"{f}:make", "--input", "1x28x28", "--traceback"]) == 2
    assert "raise RuntimeError('my forward is broken')" in capsys.readouterr().err
