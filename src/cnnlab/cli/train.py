"""``cnnlab train``: train a network on a dataset and leave a run folder."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
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
    p.add_argument("--quiet", action="store_true", help="one plain line per epoch, no bar")
    p.add_argument("--no-report", action="store_true", help="skip RUN/report.html at the end")
    p.add_argument("--list-keys", action="store_true", help="list every configuration key")
    p.set_defaults(func=_train)


# --------------------------------------------------------------------------------- rendering
def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def epoch_line(row: dict[str, Any]) -> str:
    parts = [
        f"epoch {row['epoch']}/{row['epochs']}",
        f"train loss {row['train_loss']:.4f} top-1 {_pct(row['train_top1'])}",
    ]
    if row.get("val_top1") is not None:
        parts.append(
            f"val loss {row['val_loss']:.4f} top-1 {_pct(row['val_top1'])} "
            f"top-5 {_pct(row['val_top5'])}"
        )
    if row.get("test_peek"):
        parts.append(f"test (every epoch, asked) top-1 {_pct(row['test_top1'])}")
    parts.append(f"lr {row['lr']:.3g}" + (" (lowered)" if row.get("lr_lowered") else ""))
    ips = row.get("images_per_s")
    parts.append(f"{row['seconds']:.1f} s" + (f", {ips:,.0f} img/s" if ips else ""))
    return "  ".join(parts)


class _Display:
    """Progress: a rich bar on a terminal, else (or with --quiet) one line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stdout.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(),
                transient=True,
            )
            self.task = None

    def __enter__(self) -> _Display:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start" and self.bar is not None:
            self.task = self.bar.add_task("training", total=event["total_steps"], stats="")
        elif kind == "progress" and self.bar is not None:
            stats = (
                f"loss {event['loss']:.4f} top-1 {_pct(event['top1'])} "
                f"{event['images_per_s']:,.0f} img/s lr {event['lr']:.3g}"
            )
            self.bar.update(
                self.task,
                completed=event["step"],
                description=f"epoch {event['epoch']}/{event['epochs']}",
                stats=stats,
            )
        elif kind == "epoch":
            line = epoch_line(event)
            if self.bar is not None:
                self.bar.console.print(line)
                self.bar.update(self.task, completed=event["step"])
            else:
                print(line, flush=True)


# ------------------------------------------------------------------------------------ command
def _list_keys() -> int:
    from cnnlab.train.config import describe_keys

    for key, typ, default, doc in describe_keys():
        if key in ("about",):
            continue
        print(f"{key:22s} {typ:18s} {default:14s} {doc}")
    return 0


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads,
        "val_split": args.val_split,
        "eval_test_every_epoch": args.eval_test_every_epoch,
        "checkpoint_every": args.checkpoint_every,
        "early_stop": args.early_stop,
        "on_nan": args.on_nan,
    }


# Exit statuses of cnnlab train (besides 0, and 2 for a user mistake), in the README.
EXIT_DIVERGED = 3  # a non-finite loss or gradient stopped the run
EXIT_CHECKPOINT = 4  # a checkpoint could not be written (a full disk); the previous one stays
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), checkpoint saved
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM), checkpoint saved

# What a resumed run may change; everything else must be as the run was started.
MAY_CHANGE = (
    "epochs",
    "iterations",
    "threads",
    "checkpoint_every",
    "early_stop",
    "on_nan",
    "log_steps",
    "eval_test_every_epoch",
    "eval_batch_size",
)


def _resume_sources(args: argparse.Namespace) -> tuple[Path, dict[str, Any], Any]:
    """(run folder, its config.toml, its newest valid checkpoint) for --resume; TARGET,
    --data and --option must agree with the run when they are given."""
    from cnnlab.train.checkpoint import CHECKPOINT_DIR, load_checkpoint
    from cnnlab.train.run import CONFIG_FILE, read_config

    path = Path(args.resume)
    if not (path / CONFIG_FILE).is_file():
        raise CnnlabError(
            f"--resume {path}: not a run folder (no {CONFIG_FILE}); give a folder that "
            "cnnlab train wrote"
        )
    saved = read_config(path / CONFIG_FILE)
    ckpt = load_checkpoint(path / CHECKPOINT_DIR)
    for flag, given, was in (
        ("TARGET", args.target, saved.get("target")),
        ("--data", args.data, saved.get("dataset")),
    ):
        if given is not None and given != was:
            raise CnnlabError(
                f"--resume {path}: {flag} {given!r}, but the run trained {was!r}; leave it "
                "out to continue the run as it was"
            )
    return path, saved, ckpt


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
    try:
        return _train_ranked(args, w)
    finally:
        distributed.stop()


def _train_ranked(args: argparse.Namespace, w: Any) -> int:
    from cnnlab.train import distributed
    from cnnlab.train.checkpoint import CHECKPOINT_DIR, checkpoint_paths

    restarted = distributed.restart_count() > 0 and args.out is not None
    if restarted and not args.resume and checkpoint_paths(Path(args.out) / CHECKPOINT_DIR):
        # torchrun restarted the group after a failure: continue from the last checkpoint.
        args.resume, args.target, args.data = args.out, None, None
    resume = None
    if args.resume:
        resume_path, saved, resume = _resume_sources(args)
        for note in resume.notes:
            print(f"warning: {note}", file=sys.stderr)
        args.target = args.target or saved.get("target")
        args.data = args.data or saved.get("dataset")
        args.data_dir = args.data_dir or saved.get("data_dir")
    if not args.data:
        raise CnnlabError("cnnlab train needs --data DATASET (e.g. --data fashion-mnist)")
    from cnnlab.train.config import resolve_config
    from cnnlab.train.recipes import RECIPES

    model_name = args.target
    recipe, options = resolve_config(
        args.recipe,
        model_name=model_name,
        config_file=(resume_path / "config.toml") if resume is not None else args.config,
        sets=args.sets,
        flags=_flags(args),
    )
    target_text = args.target or recipe.model
    if target_text is None:
        raise CnnlabError(
            f"recipe {recipe.name!r} brings no network: name a TARGET (a zoo model, a "
            f"notation string or file.py:factory); recipes with one: "
            + ", ".join(n for n, r in RECIPES.items() if r.model)
        )

    from cnnlab.train.device import configure_threads, placement

    threads = options.threads
    if threads is None and w.size > 1:  # the machine's cores, shared by its ranks
        from cnnlab.train.device import usable_cores

        threads = max(1, usable_cores() // w.local_size)
    threads = configure_threads(threads)  # before any tensor work
    where = placement(options.device, options.precision, options.channels_last)
    if w.size > 1:
        import dataclasses

        device = where.device
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(w.local_rank)
            device = torch.device("cuda", w.local_rank)
        distributed.start(device.type)
        where = dataclasses.replace(where, device=device, rank=w.rank, world_size=w.size)

    import torch

    from cnnlab.analysis import analyze
    from cnnlab.train.checkpoint import CheckpointError, compare_config
    from cnnlab.train.init import apply_init, set_dropout
    from cnnlab.train.loop import fit, load_data
    from cnnlab.train.run import RunWriter, create_run_dir, environment
    from cnnlab.zoo.target import load_target, parse_options

    kwargs = dict(parse_options(args.option))
    if resume is not None and args.option is None:
        kwargs = dict((saved.get("model") or {}).get("kwargs") or {})
    data = load_data(args.data, options.val_split, seed=options.seed, data_dir=args.data_dir)
    train = data.train
    shape = train.image_shape
    torch.manual_seed(options.seed)  # the initialisation
    try:
        target = load_target(
            target_text, input_size=shape, num_classes=train.num_classes, options=kwargs
        )
    except CnnlabError as exc:
        raise CnnlabError(
            f"{target_text} cannot take {train.name}'s {'x'.join(map(str, shape))} images: {exc}"
        ) from None
    model = target.model
    kind = {"spec": "notation"}.get(target.kind, target.kind)
    label = {"zoo": target.label, "file": target_text.rpartition(":")[2]}.get(kind, "net")
    set_dropout(model, recipe.dropout, label)
    apply_init(model, recipe.init)
    if args.weights and resume is None:
        from cnnlab.train.pretrained import load_pretrained

        load_pretrained(model, args.weights)
    summary = analyze(model, shape, batch=recipe.batch_size)
    out_shape = summary.output_shapes[0] if summary.output_shapes else None
    if out_shape is not None and tuple(out_shape)[1:] != (train.num_classes,):
        raise CnnlabError(
            f"{target_text} gives outputs of shape {tuple(out_shape)[1:]} per image; "
            f"{train.name} has {train.num_classes} classes, so it must give ({train.num_classes},)"
        )
    totals = summary.totals
    memory = totals.training.adam if recipe.optimizer != "sgd" else totals.training.sgd_momentum

    record = {
        "kind": kind,
        "target": target_text,
        "kwargs": target.options or {},  # typed, as the builder took them
        "in_channels": shape[0],
        "input_size": [shape[1], shape[2]],
        "num_classes": train.num_classes,
        "classes": list(train.classes),
        "mean": list(train.mean),
        "std": list(train.std),
        "dataset": train.name,
    }
    if kind == "file":
        record["file"] = str(Path(target_text.rpartition(":")[0]).resolve())
    config = {
        "target": target_text,
        "dataset": train.name,
        "recipe": recipe.to_dict(),
        "options": {
            **options.to_dict(),
            "device": where.device.type,
            "precision": where.precision,
            "channels_last": where.channels_last,
            "threads": threads,
        },
        "model": {k: v for k, v in record.items() if k != "classes"},
        "data": {
            "train": len(train),
            "val": len(data.val) if data.val is not None else 0,
            "test": len(data.test) if data.test is not None else 0,
            "integrity": train.integrity,
        },
    }
    if args.weights and resume is None:
        from cnnlab._io import file_hash

        config["model"]["weights"] = str(Path(args.weights).resolve())
        config["model"]["weights_sha256"] = file_hash(args.weights)
    elif resume is not None:  # where the run started from is the run's, not the resume's
        started_from = resume.config.get("model") or {}
        for key in ("weights", "weights_sha256"):
            if key in started_from:
                config["model"][key] = started_from[key]
    if args.data_dir:
        config["data_dir"] = str(Path(args.data_dir).resolve())
    # What a checkpoint keeps, and a resume compares (the environment may change).
    resolved = json.loads(json.dumps({k: v for k, v in config.items() if k != "data_dir"}))
    env = {**environment(threads, where.device), "command": "cnnlab " + shlex.join(sys.argv[1:])}
    if w.size > 1:
        env["ranks"] = w.size
    if resume is not None:
        try:
            compare_config(resume.config, resolved, MAY_CHANGE)
        except CheckpointError as exc:
            raise CnnlabError(f"--resume {resume_path}: {exc}") from None
        path = resume_path
        resumes = list(saved.get("environment", {}).get("resumed", []))
        resumes.append(f"step {resume.step}: {env['command']}")
        env = {**saved.get("environment", {}), "resumed": resumes}
    elif w.rank == 0:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        dataset_label = train.name.replace("folder:", "").replace("/", "_").strip("_") or "data"
        if restarted and Path(args.out).is_dir():  # restarted before its first checkpoint
            path = Path(args.out)
        else:
            path = create_run_dir(args.out, f"{label}-{dataset_label}-{stamp}")
    if w.size > 1:  # rank 0 named the folder; every rank reads the same run
        path = Path(distributed.broadcast_text(str(path) if w.rank == 0 else None))
    run = None
    if w.rank == 0:
        run = RunWriter(path, record)
        run.write_config({**config, "environment": env})
        if resume is None:
            run.write_json("summary.json", summary.to_dict())

    peak = recipe.effective_lr()
    lr_text = f"lr {peak:g}" + (
        f" ({recipe.lr:g} per {recipe.lr_batch} images)"
        if recipe.lr_batch and recipe.lr_batch != recipe.batch_size
        else ""
    )
    length = (
        _plural(recipe.epochs, "epoch")
        if recipe.epochs
        else _plural(recipe.iterations, "iteration")
    )
    print(
        f"{label}: {totals.params:,} parameters, {totals.macs / totals.batch / 1e6:,.2f} M MACs "
        "per image, "
        f"training memory ~{_bytes(memory)} at batch {recipe.batch_size} "
        f"({'SGD momentum' if recipe.optimizer == 'sgd' else recipe.optimizer})"
    )
    print(
        f"recipe {recipe.name}: {length}, batch {recipe.batch_size}, {recipe.optimizer}, "
        f"{lr_text}, {recipe.schedule} schedule; {train.name} {len(train):,} train / "
        f"{len(data.val) if data.val is not None else 0:,} val / "
        f"{len(data.test) if data.test is not None else 0:,} test; {where.device.type} "
        f"{where.precision}, {_plural(threads, 'thread')}"
    )
    if run is not None and not run.tensorboard:
        print(
            "note: tensorboard is not installed, so no TensorBoard curves (pip install "
            "'cnnlab[tensorboard]'); metrics.csv has the same numbers"
        )
    if resume is not None:
        s = resume.state
        print(
            f"resuming from {resume.path.name}: step {resume.step:,}, epoch {s['epoch'] + 1}"
            + (f" after its batch {s['batch']}" if s["batch"] else " from its start")
        )
    print(f"run folder: {path}", flush=True)

    started = time.perf_counter()
    try:
        with _Display(args.quiet) as display:
            result = fit(
                model,
                data,
                recipe,
                where=where,
                seed=options.seed,
                eval_test_every_epoch=options.eval_test_every_epoch,
                eval_batch_size=options.eval_batch_size,
                run=run,
                on_event=display if w.rank == 0 else None,
                checkpoint_every=options.checkpoint_every,
                resume=resume,
                early_stop=options.early_stop,
                on_nan=options.on_nan,
                log_steps=options.log_steps,
                config=resolved,
            )
    except CheckpointError as exc:
        print(f"error: {exc}; resume with: cnnlab train --resume {shlex.quote(str(path))}",
              file=sys.stderr)  # fmt: skip
        return EXIT_CHECKPOINT
    finally:
        if run is not None:
            run.close()
    elapsed = time.perf_counter() - started
    final = result.final
    quoted = shlex.quote(str(path))
    if result.stopped in ("interrupted", "terminated"):
        how = "Ctrl-C" if result.stopped == "interrupted" else "SIGTERM"
        saved_at = (
            f"checkpoint {Path(final['checkpoint']).name} saved"
            if final.get("checkpoint")
            else "the newest checkpoint in checkpoints/ is where it continues"
        )
        print(
            f"stopped by {how} at epoch {final['epoch']}, step {final['step']:,} of "
            f"{final['total_steps']:,}; {saved_at}; resume with: cnnlab train --resume {quoted}"
        )
        return EXIT_INTERRUPTED if result.stopped == "interrupted" else EXIT_TERMINATED
    if result.stopped == "diverged":
        what = {"loss": "loss", "gradient": "gradient norm", "weights": "weight"}[final["what"]]
        print(
            f"error: training diverged: a non-finite {what} at step {final['fault_step']:,} "
            f"(epoch {final['fault_epoch']}, batch {final['fault_batch']}), lr "
            f"{final['fault_lr']:.3g}; no checkpoint is written from it, the last one stays; "
            "lower --lr, or set grad_clip, or --on-nan skip; the run so far is in "
            f"{path}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if result.stopped == "early-stopped":
        print(
            f"early stop: no better validation top-1 for {options.early_stop} epochs; the "
            f"weights of epoch {final['restored_epoch']} (the best) are restored"
        )
    if result.test is not None:
        print(
            f"test accuracy {_pct(result.test.top1)} (top-5 {_pct(result.test.top5)}, loss "
            f"{result.test.loss:.4f}) after {_plural(final['epoch'], 'epoch')}, "
            f"{_duration(elapsed)}"
        )
    if final.get("best_epoch"):
        print(
            f"best validation top-1 {_pct(final['best_val_top1'])} at epoch "
            f"{final['best_epoch']} (weights/best.safetensors)"
        )
    if not args.no_report and w.rank == 0:
        from cnnlab.viz.report import write_report

        try:
            print(f"report: {write_report(path, data_dir=args.data_dir)}")
        except CnnlabError as exc:  # the run itself is complete; say why it has no report
            print(f"note: no report ({exc}); the run folder has everything else")
    print(f"run folder: {path}")
    print("next:")
    print(f"  cnnlab eval {quoted}                      # per-class accuracy, confusion matrix")
    print(f"  cnnlab predict {quoted} IMAGE.png         # class probabilities of an image")
    dims = "x".join(map(str, shape))
    print(f"  cnnlab summary {shlex.quote(target_text)} --input {dims}   # layer by layer")
    return 0
