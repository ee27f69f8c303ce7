"""``cnnlab data list|info|show``: which datasets are here, what is in them, what they look like."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="datasets: list, info, show",
        description="Datasets cnnlab knows (Fashion-MNIST, MNIST, CIFAR-10/100, folder:PATH): "
        "where they are, what is in them, what they look like.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    p = sub.add_parser("list", help="known datasets and where each was found")
    p.add_argument("--data-dir", metavar="DIR", help="also look in DIR (and DIR/NAME) first")
    p.set_defaults(func=_list)

    p = sub.add_parser("info", help="counts, shape, classes, mean/std, location, integrity")
    _common(p)
    p.set_defaults(func=_info)

    p = sub.add_parser("show", help="save a labelled grid of images")
    _common(p)
    p.add_argument("--n", type=int, default=64, metavar="N", help="images to show (default 64)")
    p.add_argument(
        "--out", default="grid.png", metavar="FILE", help="image file (default grid.png)"
    )
    p.add_argument("--split", default="train", help="train, test (or val for folders)")
    p.add_argument("--seed", type=int, default=0, help="which images (default 0)")
    p.add_argument("--columns", type=int, default=None, metavar="K", help="images per row")
    p.add_argument(
        "--augment",
        action="store_true",
        help="show them as training sees them: the dataset's usual crop/flip augmentation",
    )
    p.add_argument(
        "--erase", type=float, default=0.0, metavar="P", help="with --augment: random erasing P"
    )
    p.set_defaults(func=_show)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="a dataset name (cnnlab data list) or folder:PATH")
    p.add_argument("--data-dir", metavar="DIR", help="look in DIR (and DIR/NAME) first")
    p.add_argument(
        "--download", action="store_true", help="download from the official location if missing"
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="load files whose published hash differs (integrity then says 'mismatch')",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="S",
        help="folder:PATH only: resize and centre-crop every image to SxS",
    )
    p.add_argument(
        "--mode", default="auto", choices=("auto", "L", "RGB"), help="folder:PATH only: colour mode"
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


class _Progress:
    """Download progress on stderr: a rich bar on a terminal, one line per file otherwise."""

    def __init__(self) -> None:
        self._bar = None
        self._tasks: dict[str, Any] = {}
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self._bar = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, what: str, done: int, total: int | None) -> None:
        if self._bar is not None:
            if what not in self._tasks:
                self._tasks[what] = self._bar.add_task(f"download {what}", total=total)
            self._bar.update(self._tasks[what], completed=done, total=total)
        elif done == 0:
            size = f" ({total:,} bytes)" if total else ""
            print(f"downloading {what}{size}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace, split: str):
    from cnnlab.data import load_dataset

    with _Progress() as progress:
        return load_dataset(
            args.name,
            split,
            data_dir=args.data_dir,
            download=args.download,
            verify=args.verify,
            image_size=args.image_size,
            mode=args.mode,
            progress=progress,
        )


def _list(args: argparse.Namespace) -> int:
    from cnnlab.data.catalog import CATALOG
    from cnnlab.data.locate import locate

    rows = [("NAME", "IMAGES", "CLASSES", "TRAIN", "TEST", "FOUND")]
    for info in CATALOG.values():
        found, _ = locate(info, args.data_dir)
        where = (
            found.describe() if found else f"not found (where looked: cnnlab data info {info.name})"
        )
        c, h, w = info.image_shape
        sizes = dict(info.splits)
        rows.append(
            (
                info.name,
                f"{c}x{h}x{w}",
                str(info.num_classes),
                f"{sizes.get('train', 0):,}",
                f"{sizes.get('test', 0):,}",
                where,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r[:-1])) + "  " + r[-1])
    print("\nAlso: folder:PATH, an image folder with one subfolder per class.")
    return 0


def _per_class(counts: list[int]) -> str:
    if len(set(counts)) == 1:
        return f"{counts[0]:,}"
    return f"{min(counts):,} to {max(counts):,}"


def _splits_of(args: argparse.Namespace) -> list[str]:
    if args.name.startswith("folder:"):
        from cnnlab.data._folder import folder_splits

        return list(folder_splits(args.name[len("folder:") :]))
    from cnnlab.data import dataset_info

    return [s for s, _ in dataset_info(args.name).splits]


def _info(args: argparse.Namespace) -> int:
    from cnnlab.data.formats import integrity_of

    loaded = [_load(args, split) for split in _splits_of(args)]
    first = loaded[0]
    info = first.info
    title = f": {info.title}" if info is not None else ""
    print(f"{first.name}{title}")
    rows: list[tuple[str, str]] = []
    if info is not None:
        rows.append(("reference", info.reference))
        rows.append(("homepage", info.homepage))
        rows.append(("licence", info.license))
    if first.location is not None:
        rows.append(("location", first.location.describe()))
    c, h, w = first.image_shape
    rows.append(("images", f"{c}x{h}x{w} uint8 (C x H x W)"))
    for ds in loaded:
        rows.append((ds.split, f"{len(ds):,} images, {_per_class(ds.class_counts())} per class"))
    mean = ", ".join(f"{m:.4f}" for m in first.mean or ())
    std = ", ".join(f"{s:.4f}" for s in first.std or ())
    rows.append(("mean", f"{mean}  (training split, pixel/255, per channel)"))
    rows.append(("std", f"{std}  (population std over all pixels)"))
    if info is not None:
        rows.append(("flip", "horizontal flips keep the class" if info.hflip else "no flips"))
    named = ", ".join(f"{i} {n}" for i, n in enumerate(first.classes))
    wrapped = textwrap.wrap(named, width=88)
    rows.append(("classes", wrapped[0] if wrapped else ""))
    rows += [("", line) for line in wrapped[1:]]
    rows.append(("integrity", integrity_of(c for ds in loaded for c in ds.checks)))
    for line in rows:
        print(f"  {line[0]:<10} {line[1]}")
    shown = set()
    for ds in loaded:
        for check in ds.checks:
            if check.file not in shown:  # a meta file serves every split
                shown.add(check.file)
                print(f"    {check.file:<24} {check.status:<10} {check.detail}")
    return 0


_MAX_GRID = 1024  # images in one `data show` picture (32 x 32 tiles)


def _show(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.data import Augment, BatchPipeline
    from cnnlab.errors import CnnlabError
    from cnnlab.viz import denormalize, image_grid

    if not 1 <= args.n <= _MAX_GRID:
        raise CnnlabError(
            f"--n {args.n}: expected 1 to {_MAX_GRID} images (one picture of more is too large "
            "to look at; use --seed for other images)"
        )
    if args.columns is not None and not 1 <= args.columns <= args.n:
        raise CnnlabError(f"--columns {args.columns}: expected 1 to {args.n} (--n) per row")
    if args.erase and not args.augment:
        raise CnnlabError(f"--erase {args.erase}: random erasing is part of --augment; add it")
    if not 0.0 <= args.erase <= 1.0:
        raise CnnlabError(f"--erase {args.erase}: expected a probability from 0 to 1")
    ds = _load(args, args.split)
    n = min(args.n, len(ds))
    if args.augment:
        pipeline = BatchPipeline(
            ds, n, augment=Augment.standard(ds, erase_p=args.erase), seed=args.seed
        )
        x, y = next(pipeline.epoch(0))
        images = denormalize(x, ds.mean, ds.std)
        labels = y
    else:
        g = torch.Generator().manual_seed(args.seed)
        idx = torch.randperm(len(ds), generator=g)[:n]
        images, labels = ds.images[idx], ds.labels[idx]
    grid = image_grid(images, [ds.classes[int(i)] for i in labels], columns=args.columns)
    out = Path(args.out)
    try:
        grid.save(out)
    except (OSError, ValueError, KeyError) as exc:
        raise CnnlabError(
            f"{out}: cannot write the image ({exc}); use a .png or .jpg name"
        ) from None
    how = "augmented as in training, " if args.augment else ""
    print(f"wrote {out}: {n} images of {ds.name} ({ds.split}), {how}{grid.width}x{grid.height} px")
    return 0
