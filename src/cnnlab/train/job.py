"""One training run, resolved before its first step: what ``cnnlab train`` asks for
(:class:`Request`) becomes a :class:`Job` (the recipe and options, the device, the data, the
built model, its analysis, the run folder and the config that a checkpoint keeps), and
:meth:`Job.fit` trains it.

The command line only parses flags into a :class:`Request` and renders what comes back; a
notebook or a script can do the same::

    from cnnlab.train.job import Request, prepare
    job = prepare(Request(target="lenet5", data="fashion-mnist", sets=["epochs=1"]))
    result = job.fit()

Resuming (``Request(resume=RUN)``) reads the run's config and its newest valid checkpoint;
everything but :data:`MAY_CHANGE` must then resolve as it was when the run started.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["MAY_CHANGE", "Job", "Request", "prepare"]

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
    "val_every",
)


@dataclass(frozen=True)
class Request:
    """A training run as asked for: ``cnnlab train``'s arguments, by name.

    ``flags`` are configuration keys given one by one (the last layer of
    :func:`~cnnlab.train.config.resolve_config`, ``None`` values ignored); ``options`` are
    the builder's ``KEY=VALUE`` texts; ``command`` is recorded in the run's environment."""

    target: str | None = None
    data: str | None = None
    recipe: str | None = None
    config: str | None = None
    sets: list[str] | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    options: list[str] | None = None
    data_dir: str | None = None
    stream: bool = False  # an image folder read from disk (also by itself when too large)
    workers: int | None = None  # its decoding processes
    weights: str | None = None
    resume: str | None = None
    out: str | None = None
    command: str = "cnnlab train"


@dataclass
class Job:
    """Everything a run needs, resolved: hand it to :meth:`fit`."""

    request: Request
    recipe: Any  # cnnlab.train.recipe.Recipe
    options: Any  # cnnlab.train.recipe.Options
    where: Any  # cnnlab.train.device.Placement
    threads: int
    data: Any  # cnnlab.train.splits.TrainData
    model: Any  # torch.nn.Module
    target_text: str
    kind: str  # "zoo", "notation" or "file"
    label: str  # the model's short name in the run folder's name and the headline
    summary: Any  # cnnlab.analysis result at the recipe's batch
    resolved: dict[str, Any]  # the config a checkpoint keeps and a resume compares
    path: Path
    run: Any = None  # cnnlab.train.run.RunWriter on rank 0, else None
    resume: Any = None  # cnnlab.train.checkpoint.Checkpoint when resuming
    notes: list[str] = field(default_factory=list)  # warnings for the user (damaged files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.train.image_shape

    def fit(self, on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """Train (:func:`cnnlab.train.loop.fit`) and close the run folder's writers."""
        from cnnlab.train.loop import fit

        o = self.options
        try:
            return fit(
                self.model,
                self.data,
                self.recipe,
                where=self.where,
                seed=o.seed,
                eval_test_every_epoch=o.eval_test_every_epoch,
                eval_batch_size=o.eval_batch_size,
                val_every=o.val_every,
                run=self.run,
                on_event=on_event,
                checkpoint_every=o.checkpoint_every,
                resume=self.resume,
                early_stop=o.early_stop,
                on_nan=o.on_nan,
                log_steps=o.log_steps,
                config=self.resolved,
            )
        finally:
            if self.run is not None:
                self.run.close()


def prepare(request: Request, world: Any = None) -> Job:
    """Resolve ``request`` into a :class:`Job` on this process's rank of ``world``
    (:func:`cnnlab.train.distributed.world`; one process when ``None``). Starts the process
    group when the world has several ranks; writes the run folder's config on rank 0."""
    from cnnlab.train import distributed

    w = world if world is not None else distributed.world()
    request, saved, resume = _resume(request)
    if not request.data:
        raise CnnlabError("cnnlab train needs --data DATASET (e.g. --data fashion-mnist)")
    recipe, options = _configure(request, resume)
    target_text = request.target or recipe.model
    if target_text is None:
        from cnnlab.train.recipes import RECIPES

        raise CnnlabError(
            f"recipe {recipe.name!r} brings no network: name a TARGET (a zoo model, a "
            f"notation string or file.py:factory); recipes with one: "
            + ", ".join(n for n, r in RECIPES.items() if r.model)
        )
    threads, where = _place(options, w)

    from cnnlab.train.splits import load_data

    data = load_data(
        request.data,
        options.val_split,
        seed=options.seed,
        data_dir=request.data_dir,
        stream=True if request.stream else None,  # None: when it would not fit in memory
        workers=request.workers,
    )
    _check_workers(request, data.train)
    options_text = request.options
    kwargs = None
    if resume is not None and options_text is None:
        kwargs = dict((saved.get("model") or {}).get("kwargs") or {})
    notes = list(resume.notes) if resume is not None else []
    model, target, summary = _build(
        request, recipe, options, data, target_text, kwargs, resume, notes
    )
    kind, label = _kind_label(target, target_text)
    record = _record(kind, target, target_text, data.train)
    config = _config(request, recipe, options, where, threads, record, data, resume)
    # What a checkpoint keeps, and a resume compares (the environment may change).
    resolved = json.loads(json.dumps({k: v for k, v in config.items() if k != "data_dir"}))
    env = _environment(request, threads, where, w, saved, resume, resolved)
    path = _run_folder(request, w, resume, label, data.train.name)

    run = None
    if w.rank == 0:
        from cnnlab.train.run import RunWriter

        run = RunWriter(path, record)
        run.write_config({**config, "environment": env})
        if resume is None:
            run.write_json("summary.json", summary.to_dict())
    return Job(
        request=request,
        recipe=recipe,
        options=options,
        where=where,
        threads=threads,
        data=data,
        model=model,
        target_text=target_text,
        kind=kind,
        label=label,
        summary=summary,
        resolved=resolved,
        path=path,
        run=run,
        resume=resume,
        notes=notes,
    )


# ------------------------------------------------------------------------------- the steps
def _resume(request: Request) -> tuple[Request, dict[str, Any], Any]:
    """The request completed from the run it resumes: (request, the run's config.toml, its
    newest valid checkpoint), or (request, {}, None) for a new run. A group that torchrun
    restarted after a failure continues from ``out``'s last checkpoint by itself."""
    from cnnlab.train import distributed
    from cnnlab.train.checkpoint import CHECKPOINT_DIR, checkpoint_paths, load_checkpoint
    from cnnlab.train.run import CONFIG_FILE, read_config

    if (
        not request.resume
        and request.out is not None
        and distributed.restart_count() > 0
        and checkpoint_paths(Path(request.out) / CHECKPOINT_DIR)
    ):
        request = dataclasses.replace(request, resume=request.out, target=None, data=None)
    if not request.resume:
        return request, {}, None
    path = Path(request.resume)
    if not (path / CONFIG_FILE).is_file():
        raise CnnlabError(
            f"--resume {path}: not a run folder (no {CONFIG_FILE}); give a folder that "
            "cnnlab train wrote"
        )
    saved = read_config(path / CONFIG_FILE)
    ckpt = load_checkpoint(path / CHECKPOINT_DIR)
    for flag, given, was in (
        ("TARGET", request.target, saved.get("target")),
        ("--data", request.data, saved.get("dataset")),
    ):
        if given is not None and given != was:
            raise CnnlabError(
                f"--resume {path}: {flag} {given!r}, but the run trained {was!r}; leave it "
                "out to continue the run as it was"
            )
    request = dataclasses.replace(
        request,
        target=request.target or saved.get("target"),
        data=request.data or saved.get("dataset"),
        data_dir=request.data_dir or saved.get("data_dir"),
        stream=request.stream or bool((saved.get("data") or {}).get("streamed")),
    )
    return request, saved, ckpt


def _check_workers(request: Request, train: Any) -> None:
    from cnnlab.data import StreamDataset

    if request.workers is not None and not isinstance(train, StreamDataset):
        raise CnnlabError(
            f"--workers {request.workers}: {train.name} is held in memory; --workers sets the "
            "decoding processes of streamed data (--stream, folder:PATH datasets)"
        )


def _configure(request: Request, resume: Any) -> tuple[Any, Any]:
    from cnnlab.train.config import resolve_config

    config_file = request.config
    if resume is not None:  # the run's own config is the base layer
        config_file = Path(request.resume) / "config.toml"
    return resolve_config(
        request.recipe,
        model_name=request.target,
        config_file=config_file,
        sets=request.sets,
        flags=request.flags,
    )


def _place(options: Any, w: Any) -> tuple[int, Any]:
    """(threads, placement): threads set before any tensor work, the device chosen, and the
    process group started when there are several ranks."""
    from cnnlab.train import distributed
    from cnnlab.train.device import configure_threads, placement, usable_cores

    threads = options.threads
    if threads is None and w.size > 1:  # the machine's cores, shared by its ranks
        threads = max(1, usable_cores() // w.local_size)
    threads = configure_threads(threads)
    where = placement(options.device, options.precision, options.channels_last)
    if w.size > 1:
        device = where.device
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(w.local_rank)
            device = torch.device("cuda", w.local_rank)
        distributed.start(device.type)
        # Every rank must compute alike (DDP checks the parameters' layouts agree), but an
        # "auto" precision is measured per process: rank 0's choice is the run's.
        chosen = distributed.broadcast_text(f"{where.precision} {int(where.channels_last)}")
        precision, channels_last = chosen.split()
        where = dataclasses.replace(
            where,
            device=device,
            precision=precision,
            channels_last=channels_last == "1",
            rank=w.rank,
            world_size=w.size,
        )
    return threads, where


def _build(
    request: Request,
    recipe: Any,
    options: Any,
    data: Any,
    target_text: str,
    kwargs: dict[str, Any] | None,
    resume: Any,
    notes: list[str],
) -> tuple[Any, Any, Any]:
    """(model, target, analysis): the network built for the dataset's images, initialised
    by the recipe (or from ``request.weights``), its output checked against the classes.
    A whitening the model cannot take (no convolution over the images) is a note."""
    import torch

    from cnnlab.analysis import analyze
    from cnnlab.train.init import apply_init, set_dropout, whiten_first_conv
    from cnnlab.zoo.target import load_target, parse_options

    if kwargs is None:
        kwargs = dict(parse_options(request.options))
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
    set_dropout(model, recipe.dropout, _kind_label(target, target_text)[1])
    apply_init(model, recipe.init)
    if recipe.whiten != "none":
        try:
            # Resumed or loaded weights replace any whitening: only "frozen" still applies.
            fresh = resume is None and not request.weights
            whiten_first_conv(model, train, frozen=recipe.whiten == "frozen", values=fresh)
        except CnnlabError as exc:
            notes.append(f"the first layer is not whitened: {exc}")
    if request.weights and resume is None:
        from cnnlab.train.pretrained import load_pretrained

        load_pretrained(model, request.weights)
    summary = analyze(model, shape, batch=recipe.batch_size)
    out_shape = summary.output_shapes[0] if summary.output_shapes else None
    if out_shape is not None and tuple(out_shape)[1:] != (train.num_classes,):
        raise CnnlabError(
            f"{target_text} gives outputs of shape {tuple(out_shape)[1:]} per image; "
            f"{train.name} has {train.num_classes} classes, so it must give ({train.num_classes},)"
        )
    return model, target, summary


def _kind_label(target: Any, target_text: str) -> tuple[str, str]:
    """("zoo" | "notation" | "file", the model's short name)."""
    kind = {"spec": "notation"}.get(target.kind, target.kind)
    label = {"zoo": target.label, "file": target_text.rpartition(":")[2]}.get(kind, "net")
    return kind, label


def _record(kind: str, target: Any, target_text: str, train: Any) -> dict[str, Any]:
    """How to rebuild the model: the weights files' record (:func:`~cnnlab.train.run.
    build_from_record`)."""
    shape = train.image_shape
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
    return record


def _config(
    request: Request,
    recipe: Any,
    options: Any,
    where: Any,
    threads: int,
    record: dict[str, Any],
    data: Any,
    resume: Any,
) -> dict[str, Any]:
    """The run's config.toml, less its environment."""
    train = data.train
    config = {
        "target": record["target"],
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
    from cnnlab.data import StreamDataset

    if isinstance(train, StreamDataset):  # a resume streams too (the statistics of a large
        config["data"]["streamed"] = True  # folder are a sample's, not the in-memory ones)
    if request.weights and resume is None:
        from cnnlab._io import file_hash

        config["model"]["weights"] = str(Path(request.weights).resolve())
        config["model"]["weights_sha256"] = file_hash(request.weights)
    elif resume is not None:  # where the run started from is the run's, not the resume's
        started_from = resume.config.get("model") or {}
        for key in ("weights", "weights_sha256"):
            if key in started_from:
                config["model"][key] = started_from[key]
    if request.data_dir:
        config["data_dir"] = str(Path(request.data_dir).resolve())
    return config


def _environment(
    request: Request,
    threads: int,
    where: Any,
    w: Any,
    saved: dict[str, Any],
    resume: Any,
    resolved: dict[str, Any],
) -> dict[str, Any]:
    """The config's environment table; for a resume, the saved one plus this resume, after
    checking that only :data:`MAY_CHANGE` differs from the saved run."""
    from cnnlab.train.checkpoint import CheckpointError, compare_config
    from cnnlab.train.run import environment

    env = {**environment(threads, where.device), "command": request.command}
    if w.size > 1:
        env["ranks"] = w.size
    if resume is None:
        return env
    try:
        compare_config(resume.config, resolved, MAY_CHANGE)
    except CheckpointError as exc:
        raise CnnlabError(f"--resume {request.resume}: {exc}") from None
    resumes = list(saved.get("environment", {}).get("resumed", []))
    resumes.append(f"step {resume.step}: {env['command']}")
    return {**saved.get("environment", {}), "resumed": resumes}


def _run_folder(request: Request, w: Any, resume: Any, label: str, dataset: str) -> Path:
    """The run folder: the resumed one, or a new one named by rank 0 and shared with the
    other ranks."""
    from cnnlab.train import distributed
    from cnnlab.train.run import create_run_dir

    path = None
    if resume is not None:
        path = Path(request.resume)
    elif w.rank == 0:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        dataset_label = dataset.replace("folder:", "").replace("/", "_").strip("_") or "data"
        restarted = distributed.restart_count() > 0 and request.out is not None
        if restarted and Path(request.out).is_dir():  # restarted before its first checkpoint
            path = Path(request.out)
        else:
            path = create_run_dir(request.out, f"{label}-{dataset_label}-{stamp}")
    if w.size > 1:  # rank 0 named the folder; every rank reads the same run
        path = Path(distributed.broadcast_text(str(path) if w.rank == 0 else None))
    return path
