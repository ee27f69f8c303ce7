"""What ``cnnlab train`` shows: the headline before the first step, the progress (a rich bar
on a terminal, else one line per epoch), and the outcome with the commands to go on."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from cnnlab._io import format_bytes
from cnnlab.cli._format import duration, pct, plural

__all__ = [
    "EXIT_CHECKPOINT",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Display",
    "busy_note",
    "epoch_line",
    "headline",
    "next_steps",
    "outcome",
    "preset_lines",
]

# Exit statuses of cnnlab train (besides 0, and 2 for a user mistake), in the README.
EXIT_DIVERGED = 3  # a non-finite loss or gradient stopped the run
EXIT_CHECKPOINT = 4  # a checkpoint could not be written (a full disk); the previous one stays
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), checkpoint saved
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM), checkpoint saved


def headline(job: Any) -> list[str]:
    """The lines printed before training: the network's size and memory, the recipe and the
    data, TensorBoard's absence, where a resume continues, the run folder."""
    recipe, totals, train, data = job.recipe, job.summary.totals, job.data.train, job.data
    sgd = recipe.optimizer == "sgd"
    memory = totals.training.sgd_momentum if sgd else totals.training.adam
    peak = recipe.effective_lr()
    lr_text = f"lr {peak:g}" + (
        f" ({recipe.lr:g} per {recipe.lr_batch} images)"
        if recipe.lr_batch and recipe.lr_batch != recipe.batch_size
        else ""
    )
    length = (
        plural(recipe.epochs, "epoch") if recipe.epochs else plural(recipe.iterations, "iteration")
    )
    lines = [
        f"{job.label}: {totals.params:,} parameters, {totals.macs / totals.batch / 1e6:,.2f} M "
        f"MACs per image, training memory ~{format_bytes(memory)} at batch "
        f"{recipe.batch_size} ({'SGD momentum' if sgd else recipe.optimizer})",
        f"recipe {recipe.name}: {length}, batch {recipe.batch_size}, {recipe.optimizer}, "
        f"{lr_text}, {recipe.schedule} schedule; {train.name} {len(train):,} train / "
        f"{len(data.val) if data.val is not None else 0:,} val / "
        f"{len(data.test) if data.test is not None else 0:,} test; {job.where.device.type} "
        f"{job.where.precision}, {plural(job.threads, 'thread')}",
    ]
    if job.run is not None and not job.run.tensorboard:
        lines.append(
            "note: tensorboard is not installed, so no TensorBoard curves (pip install "
            "'cnnlab[tensorboard]'); metrics.csv has the same numbers"
        )
    if job.resume is not None:
        s = job.resume.state
        lines.append(
            f"resuming from {job.resume.path.name}: step {job.resume.step:,}, epoch "
            f"{s['epoch'] + 1}"
            + (f" after its batch {s['batch']}" if s["batch"] else " from its start")
        )
    lines.append(f"run folder: {job.path}")
    return lines


def preset_lines(
    preset: Any,
    sets: list[str],
    target: float | None,
    budget: str | None,
    changed: list[str],
    presets: tuple = (),
) -> list[tuple[str, bool]]:
    """What ``--target`` / ``--budget`` chose (``preset``, as its ``--set`` keys ``sets``)
    and what it measured (README, Performance), as (line, for stderr): a warning where that
    is below the accuracy asked for.  ``changed``: the user's own settings that change what
    it trains (then its measurement is not theirs); ``presets``: all of them, to name one
    that reached the target where this one did not."""
    asked = f"--target {target:g}" if target is not None else f"--budget {budget}"
    from cnnlab.train.recipes import set_value

    epochs = int(set_value(sets, "epochs", str(preset.epochs)))
    what = preset.describe()
    if epochs != preset.epochs:  # a budget cut it: fewer epochs of one preset
        what = (
            f"{plural(epochs, 'epoch')} of the {preset.target:.0%} preset's {preset.epochs}, "
            "cut for the budget"
        )
    if changed:
        what += f", changed by {', '.join(changed)}"
    if epochs != preset.epochs or changed:
        said = f"not measured as such (as the preset is, {pct(preset.measured)} test accuracy)"
    else:
        said = f"measured {pct(preset.measured)} test accuracy (README, Performance)"
    lines = [(f"preset for {asked}: {what}; {said}", False)]
    if target is not None and preset.measured < target - 1e-9:
        better = [p for p in presets if p.measured >= target - 1e-9]
        instead = (
            f"--target {better[0].target:g} measured {pct(better[0].measured)}"
            if better
            else "no preset has reached it yet"
        )
        lines.append(
            (
                f"warning: this preset measured {pct(preset.measured)}, short of the "
                f"{pct(target)} asked; {instead}",
                True,
            )
        )
    return lines


def busy_note(others: float | None, threads: int, cores: int) -> str | None:
    """A note when other processes kept cores busy while the run started and its threads
    would share them (None otherwise): threads that share a core with other work wait on each
    other at every operation (README, Performance: two threads ran 2-3x slower beside one
    busy process, one thread or two one-thread ranks did not)."""
    if others is None or threads < 2 or others < 0.5 or threads + others <= cores + 0.25:
        return None
    return (
        f"note: other processes kept {others:.1f} of the {plural(cores, 'core')} busy as this "
        f"run started; {threads} threads beside them wait on each other (up to 3x slower): on "
        "a busy machine --threads 1 (or --nproc 2) trains faster"
    )


def outcome(job: Any, result: Any, elapsed: float) -> tuple[int, list[str], list[str]]:
    """(exit status, lines for stdout, lines for stderr) once :meth:`Job.fit` returned."""
    final, quoted = result.final, shlex.quote(str(job.path))
    if result.stopped in ("interrupted", "terminated"):
        how = "Ctrl-C" if result.stopped == "interrupted" else "SIGTERM"
        saved_at = (
            f"checkpoint {Path(final['checkpoint']).name} saved"
            if final.get("checkpoint")
            else "the newest checkpoint in checkpoints/ is where it continues"
        )
        status = EXIT_INTERRUPTED if result.stopped == "interrupted" else EXIT_TERMINATED
        return (
            status,
            [
                f"stopped by {how} at epoch {final['epoch']}, step {final['step']:,} of "
                f"{final['total_steps']:,}; {saved_at}; resume with: cnnlab train --resume {quoted}"
            ],
            [],
        )
    if result.stopped == "diverged":
        what = {"loss": "loss", "gradient": "gradient norm", "weights": "weight"}[final["what"]]
        return (
            EXIT_DIVERGED,
            [],
            [
                f"error: training diverged: a non-finite {what} at step {final['fault_step']:,} "
                f"(epoch {final['fault_epoch']}, batch {final['fault_batch']}), lr "
                f"{final['fault_lr']:.3g}; no checkpoint is written from it, the last one stays; "
                "lower --lr, or set grad_clip, or --on-nan skip; the run so far is in "
                f"{job.path}"
            ],
        )
    out = []
    if result.stopped == "early-stopped":
        out.append(
            f"early stop: no better validation top-1 for {job.options.early_stop} epochs; the "
            f"weights of epoch {final['restored_epoch']} (the best) are restored"
        )
    if result.test is not None:
        out.append(
            f"test accuracy {pct(result.test.top1)} (top-5 {pct(result.test.top5)}, loss "
            f"{result.test.loss:.4f}) after {plural(final['epoch'], 'epoch')}, "
            f"{duration(elapsed)}"
        )
    if final.get("best_epoch"):
        out.append(
            f"best validation top-1 {pct(final['best_val_top1'])} at epoch "
            f"{final['best_epoch']} (weights/best.safetensors)"
        )
    return 0, out, []


def next_steps(job: Any) -> list[str]:
    """The commands that use the finished run."""
    quoted = shlex.quote(str(job.path))
    return [
        f"run folder: {job.path}",
        "next:",
        f"  cnnlab eval {quoted}                      # per-class accuracy, confusion matrix",
        f"  cnnlab predict {quoted} IMAGE.png         # class probabilities of an image",
        f"  cnnlab summary {quoted}                   # its model, layer by layer",
    ]


def epoch_line(row: dict[str, Any]) -> str:
    """One epoch's row of the metrics as a line of text."""
    parts = [
        f"epoch {row['epoch']}/{row['epochs']}",
        f"train loss {row['train_loss']:.4f} top-1 {pct(row['train_top1'])}",
    ]
    if row.get("val_top1") is not None:
        parts.append(
            f"val loss {row['val_loss']:.4f} top-1 {pct(row['val_top1'])} "
            f"top-5 {pct(row['val_top5'])}"
        )
    if row.get("test_peek"):
        parts.append(f"test (every epoch, asked) top-1 {pct(row['test_top1'])}")
    parts.append(f"lr {row['lr']:.3g}" + (" (lowered)" if row.get("lr_lowered") else ""))
    ips = row.get("images_per_s")
    parts.append(f"{row['seconds']:.1f} s" + (f", {ips:,.0f} img/s" if ips else ""))
    return "  ".join(parts)


class Display:
    """Progress: a rich bar on a terminal, else (or with --quiet) one line per epoch; called
    with each event of :func:`cnnlab.train.loop.fit`."""

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

    def __enter__(self) -> Display:
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
                f"loss {event['loss']:.4f} top-1 {pct(event['top1'])} "
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
