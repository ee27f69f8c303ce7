"""``cnnlab train``: train a network on a dataset and leave a run folder."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any

from cnnlab.errors import CnnlabError


def register(sub: argparse._SubParsersAction) -> None:
    from cnnlab.train.recipes import RECIPES

    recipes = "\n".join(f"  {name:13s} {r.about.split('.')[0]}" for name, r in RECIPES.items())
    p = sub.add_parser(
        "train",
        help="train a network on a dataset; leaves a run folder (config, metrics, weights)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train TARGET (a zoo name, a network in the compact notation, or "
        "file.py:factory) on DATASET with the mini-batch SGD loop of the lecture.  Input "
        "channels, size and classes come from the dataset.  Configuration layers, later "
        "winning: the recipe (--recipe, else the model family's), --config FILE (TOML), "
        "--set KEY=VALUE, then the flags below.",
        epilog=f"recipes:\n{recipes}\n\nEvery key: cnnlab train --list-keys",
    )
    p.add_argument("target", metavar="TARGET", nargs="?", help="model (default: the recipe's)")
    p.add_argument("--data", metavar="DATASET", help="fashion-mnist, mnist, cifar10, folder:PATH")
    p.add_argument("--recipe", metavar="R", help=f"one of {', '.join(RECIPES)}")
    p.add_argument("--epochs", type=int, metavar="E", help="passes over the training split")
    p.add_argument("--batch-size", type=int, metavar="B", help="global mini-batch size")
    p.add_argument(
        "--lr", type=float, metavar="LR", help="learning rate (at the recipe's lr_batch)"
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/MODEL-DATA-TIME)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="default auto")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all usable)")
    p.add_argument("--config", metavar="FILE", help="TOML file of configuration keys")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", dest="sets", help="one key (repeatable)"
    )
    p.add_argument("--val-split", type=float, metavar="F", help="held-out fraction (0.1)")
    p.add_argument(
        "--eval-test-every-epoch",
        action="store_true",
        default=None,
        help="also evaluate the test split after each epoch (marked as such in the logs)",
    )
    p.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="builder option, aux_logits=True"
    )
    p.add_argument("--data-dir", metavar="DIR", help="where to look for the dataset first")
    p.add_argument(
        "--stream",
        action="store_true",
        help="read the image folder from disk batch by batch, decoded by worker processes "
        "(chosen by itself when it would not fit in memory); the same batches",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="decoding processes of streamed data (default: the cores less one)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="start from these weights: a state_dict as .safetensors, or .pth read with "
        "torch.load(weights_only=True) (torchvision's ResNet, VGG, AlexNet)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue RUN from its newest valid checkpoint (only epochs, iterations and the "
        "settings of checkpoints, logging and threads may change)",
    )
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train with N processes on this machine (starts torchrun; DDP, gloo on the CPU, "
        "NCCL on CUDA); the global batch is split across them",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also checkpoint every N steps (always: each epoch, Ctrl-C, SIGTERM)",
    )
    p.add_argument(
        "--early-stop",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation top-1; keep the best weights",
    )
    p.add_argument(
        "--on-nan",
        choices=("stop", "skip"),
        help="a non-finite loss or gradient: stop (default, exit status 3) or skip the update",
    )
    p.add_argument(
        "--target",
        dest="target_accuracy",
        type=float,
        metavar="ACC",
        help="--recipe fast: the preset aimed at this test accuracy (0.92 ... 0.95; not yet "
        "reached by every preset: see the README's Performance)",
    )
    p.add_argument(
        "--budget",
        metavar="TIME",
        help="--recipe fast: the most accurate preset that fits TIME (60s, 5min)",
    )
    p.add_argument("--quiet", action="store_true", help="one plain line per epoch, no bar")
    p.add_argument("--no-report", action="store_true", help="skip RUN/report.html at the end")
    p.add_argument("--list-keys", action="store_true", help="list every configuration key")
    p.set_defaults(func=_train)


# ------------------------------------------------------------------------------------ command
def _list_keys() -> int:
    from cnnlab.train.config import describe_keys

    for key, typ, default, doc in describe_keys():
        if key in ("about",):
            continue
        print(f"{key:22s} {typ:18s} {default:14s} {doc}")
    return 0


# Flags that are configuration keys of the same name (argparse's dest is the key).
_FLAG_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "device",
    "precision",
    "threads",
    "val_split",
    "eval_test_every_epoch",
    "checkpoint_every",
    "early_stop",
    "on_nan",
)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that are configuration keys, by key (None: not given)."""
    return {key: getattr(args, key) for key in _FLAG_KEYS}


def _request(args: argparse.Namespace, preset_sets: list[str]) -> Any:
    from cnnlab.train.job import Request

    return Request(
        target=args.target,
        data=args.data,
        recipe=args.recipe,
        config=args.config,
        sets=preset_sets + list(args.sets or []),
        flags=_flags(args),
        options=args.option,
        data_dir=args.data_dir,
        stream=args.stream,
        workers=args.workers,
        weights=args.weights,
        resume=args.resume,
        out=args.out,
        command="cnnlab " + shlex.join(sys.argv[1:]),
    )


def _preset(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """``--target`` / ``--budget``: the fast recipe's preset and its ``--set`` keys (which
    the user's own ``--set`` and flags override); (None, []) without either."""
    if args.target_accuracy is None and args.budget is None:
        return None, []
    from cnnlab.train.recipes import BUDGET_UNITS, default_recipe, fast_preset, parse_budget

    if args.budget is not None and str(args.target).lower() in BUDGET_UNITS:
        # `--budget 5 min`: the unit would be read as the model to train
        raise CnnlabError(
            f"--budget {args.budget} {args.target}: write the time as one word, "
            f"--budget {args.budget}{args.target}"
        )
    recipe = args.recipe or default_recipe(args.target)  # as resolve_config chooses it
    if recipe != "fast":
        given = f"--recipe {recipe}" if args.recipe else f"{args.target} trains with {recipe!r}"
        raise CnnlabError(
            f"--target/--budget choose a preset of --recipe fast ({given}); "
            "valid: cnnlab train --recipe fast --data fashion-mnist --target 0.93"
        )
    budget = parse_budget(args.budget) if args.budget is not None else None
    preset, sets = fast_preset(args.target_accuracy, budget, precision=run_precision(args))
    if args.early_stop is not None or "schedule=plateau" in (args.sets or []):
        # asked for what watches every epoch's validation: the preset's validation after
        # the last epoch only gives way
        sets = [s for s in sets if not s.startswith("val_every=")]
    return preset, sets


def run_precision(args: argparse.Namespace) -> str:
    """The precision the run will train in, as its configuration resolves it (``--config``,
    then ``--set``, then ``--precision``; ``auto`` by default), so that a budget's estimate
    probes the networks in it (without the flag, the probes once ran in fp32 where the run
    took bf16).  A bad value gets the configuration's own message, before any probe."""
    from cnnlab.train.config import resolve_config

    _, options = resolve_config(
        "fast", config_file=args.config, sets=list(args.sets or []), flags=_flags(args)
    )
    return options.precision


def _changes(args: argparse.Namespace) -> list[str]:
    """The user's settings that change what a preset trains: a network of their own, the
    length, batch or learning rate by flag, any ``--set`` (``--set seed=...`` aside)."""
    changed = [f"the network {_short(args.target)!r}"] if args.target else []
    changed += [f"--{k.replace('_', '-')}" for k in ("epochs", "batch_size", "lr")
                if getattr(args, k) is not None]  # fmt: skip
    changed += [f"--set {_short(s)}" for s in args.sets or [] if not s.startswith("seed=")]
    return changed


def _short(text: str, width: int = 40) -> str:
    """``text``, or its first ``width`` characters and "..." (a network's whole notation
    would fill the preset line)."""
    return text if len(text) <= width else text[: width - 3] + "..."


def _launch(nproc: int) -> int:
    """``cnnlab train --nproc N ...``: the same command as N processes under torchrun."""
    import subprocess

    from cnnlab.train.distributed import torchrun_command

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    return subprocess.call(torchrun_command(nproc, argv))


def _train(args: argparse.Namespace) -> int:
    if args.list_keys:
        return _list_keys()
    from cnnlab.train import distributed

    w = distributed.world()
    if args.nproc is not None and w.size == 1 and "RANK" not in os.environ:
        return _launch(args.nproc)
    if w.rank != 0:  # only rank 0 prints (errors still reach stderr from every rank)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    completed = False
    try:
        code = _train_ranked(args, w)
        completed = code == 0
        return code
    finally:
        # Every rank of a completed run gets here, so they leave together; otherwise (an
        # exception, a checkpoint rank 0 could not write) this rank may be the only one.
        distributed.stop(together=completed)


def _train_ranked(args: argparse.Namespace, w: Any) -> int:
    from cnnlab.cli import _train_display as show
    from cnnlab.train.checkpoint import CheckpointError
    from cnnlab.train.device import CpuUse, usable_cores
    from cnnlab.train.job import prepare
    from cnnlab.train.recipes import FAST_PRESETS

    use = CpuUse.now()  # what other processes do while this one starts
    preset, preset_sets = _preset(args)
    job = prepare(_request(args, preset_sets), w)
    for note in job.notes:
        print(f"warning: {note}", file=sys.stderr)
    if preset is not None and w.rank == 0:
        for line, to_stderr in show.preset_lines(
            preset, preset_sets, args.target_accuracy, args.budget, _changes(args), FAST_PRESETS
        ):
            print(line, file=sys.stderr if to_stderr else sys.stdout)
    print("\n".join(show.headline(job)), flush=True)
    if job.where.device.type == "cpu" and w.size == 1:
        busy = show.busy_note(use.others_cores(), job.threads, usable_cores())
        if busy:
            print(busy, flush=True)
    started = time.perf_counter()
    try:
        with show.Display(args.quiet) as display:
            result = job.fit(on_event=display if w.rank == 0 else None)
    except CheckpointError as exc:
        print(f"error: {exc}; resume with: cnnlab train --resume {shlex.quote(str(job.path))}",
              file=sys.stderr)  # fmt: skip
        return show.EXIT_CHECKPOINT
    status, out, err = show.outcome(job, result, time.perf_counter() - started)
    for line in err:
        print(line, file=sys.stderr)
    for line in out:
        print(line)
    if status != 0:
        return status
    if not args.no_report and w.rank == 0:
        from cnnlab.viz.report import write_report

        try:
            print(f"report: {write_report(job.path, data_dir=job.request.data_dir)}")
        except CnnlabError as exc:  # the run itself is complete; say why it has no report
            print(f"note: no report ({exc}); the run folder has everything else")
    print("\n".join(show.next_steps(job)))
    return 0
