"""Finding a dataset's files: the search order, the layouts recognised, the not-found message.

Search order for a catalogued dataset NAME (first complete match wins):

1. ``data_dir`` (``--data-dir DIR``): ``DIR`` itself, then ``DIR/NAME``;
2. ``$CNNLAB_DATA/NAME``;
3. the user cache, ``$XDG_CACHE_HOME/cnnlab/NAME`` (default ``~/.cache/cnnlab/NAME``);
4. known system locations (Debian's ``/usr/share/datasets/...``, Keras's cache);
5. only when asked (``download=True``), a download from the official location into
   ``DIR/NAME``, ``$CNNLAB_DATA/NAME`` or the user cache (the first of these that applies).

Inside each folder these layouts are recognised: the files side by side (IDX plain or ``.gz``,
also the ``train-images.idx3-ubyte`` spelling), torchvision's ``<folder>/FashionMNIST/raw/``,
CIFAR's unpacked ``cifar-10-batches-py/`` and the unopened ``cifar-10-python.tar.gz``.

No torch here: ``cnnlab data list`` runs on this module alone.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cnnlab.data._download import ProgressFn
from cnnlab.data.catalog import DatasetInfo, dataset_info
from cnnlab.data.formats import Location, format_of
from cnnlab.errors import DataError

__all__ = [
    "FOLDER_PREFIX",
    "Location",
    "ProgressFn",
    "check_data_dir",
    "download_dir",
    "find_dataset",
    "locate",
    "resolve",
    "search_dirs",
    "user_cache_dir",
]

FOLDER_PREFIX = "folder:"


def user_cache_dir() -> Path:
    """cnnlab's cache folder: ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "cnnlab"


def resolve(name: str | DatasetInfo) -> DatasetInfo:
    """A catalogued dataset's :class:`DatasetInfo` (``DatasetInfo`` passes through)."""
    return name if isinstance(name, DatasetInfo) else dataset_info(name)


def search_dirs(
    name: str | DatasetInfo, data_dir: str | Path | None = None
) -> list[tuple[str, Path]]:
    """The (origin, folder) pairs searched for ``name``, in order (see the module doc)."""
    info = resolve(name)
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        places += [("--data-dir", d), ("--data-dir", d / info.name)]
    env = os.environ.get("CNNLAB_DATA")
    if env:
        places.append(("$CNNLAB_DATA", Path(env).expanduser() / info.name))
    places.append(("user cache", user_cache_dir() / info.name))
    places += [(why, Path(p).expanduser()) for p, why in info.system_dirs]
    return places


def check_data_dir(data_dir: str | Path | None) -> None:
    """A given ``data_dir`` must be a folder: a mistyped one would silently find nothing."""
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(
            f"data_dir {data_dir}: no such folder (give an existing folder, or download to "
            "fetch the files into it)"
        )


def download_dir(name: str | DatasetInfo, data_dir: str | Path | None = None) -> Path:
    """Where a download of ``name`` goes: ``DIR/NAME``, ``$CNNLAB_DATA/NAME`` or the cache."""
    info = resolve(name)
    if data_dir is not None:
        return Path(data_dir).expanduser() / info.name
    env = os.environ.get("CNNLAB_DATA")
    base = Path(env).expanduser() if env else user_cache_dir()
    return base / info.name


def _best_layout(
    info: DatasetInfo, layouts: list[Path]
) -> tuple[Path, tuple[tuple[str, Path], ...], list[str]]:
    """(folder, files found, names missing) for the layout holding most of the files."""
    best: tuple[Path, list[tuple[str, Path]], list[str]] = (
        layouts[0],
        [],
        [f.name for f in info.files],
    )
    candidates = format_of(info).candidates
    for base in layouts:
        found, missing = [], []
        for f in info.files:
            hit = next((base / c for c in candidates(f.name) if (base / c).is_file()), None)
            if hit is None:
                missing.append(f.name)
            else:
                found.append((f.name, hit))
        if len(found) > len(best[1]):
            best = (base, found, missing)
    return best[0], tuple(best[1]), best[2]


def _look(info: DatasetInfo, origin: str, folder: Path) -> tuple[Location | None, str]:
    """Try one folder: (location or None, a one-line note for the not-found message)."""
    if not folder.is_dir():
        return None, "no such folder"
    fmt = format_of(info)
    base, files, missing = _best_layout(info, fmt.layouts(info, folder))
    archive = fmt.in_place(info, folder) if missing else None
    if archive is not None:
        return Location(info.name, folder, origin, (), archive), "found"
    if not missing:
        return Location(info.name, base, origin, files), "found"
    if len(missing) == len(info.files):
        return None, "none of its files"
    return None, f"incomplete: missing {', '.join(missing)}"


def locate(
    name: str | DatasetInfo, data_dir: str | Path | None = None, *, must_exist: bool = True
) -> tuple[Location | None, list[tuple[str, Path, str]]]:
    """Search without downloading: (location or None, [(origin, folder, note), ...] looked at).
    A ``data_dir`` that is not a folder is a :class:`DataError` (it would find nothing),
    unless not ``must_exist`` (a download creates it)."""
    info = resolve(name)
    if must_exist:
        check_data_dir(data_dir)
    looked: list[tuple[str, Path, str]] = []
    for origin, folder in search_dirs(info, data_dir):
        found, note = _look(info, origin, folder)
        looked.append((origin, folder, note))
        if found is not None:
            return found, looked
    return None, looked


def _not_found(
    info: DatasetInfo, looked: list[tuple[str, Path, str]], target: Path, failure: str
) -> DataError:
    lines = [f"dataset {info.name!r} not found. cnnlab looked in:"]
    for origin, folder, note in looked:
        if origin == "user cache" and not os.environ.get("CNNLAB_DATA"):
            lines.append(f"  $CNNLAB_DATA/{info.name}: $CNNLAB_DATA is not set")
        lines.append(f"  {folder} ({origin}): {note}")
    if failure:
        lines.append(f"The download failed: {failure}")
    lines.append("To get it:")
    lead = "  - "
    if info.debian_package:
        lines.append(f"  - on Debian/Ubuntu: sudo apt-get install {info.debian_package}")
        lead = "  - or "
    what = format_of(info).to_get(info)
    lines.append(f"{lead}download {what} from {info.urls[0]} into {target}")
    lines.append(
        "    (or into any folder given as --data-dir DIR, or $CNNLAB_DATA/" + info.name + ")"
    )
    if not failure:
        lines.append(
            "  - or let cnnlab fetch it where a network exists: --download (Python: download=True)"
        )
    return DataError("\n".join(lines))


def find_dataset(
    name: str | DatasetInfo,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    progress: ProgressFn | None = None,
) -> Location:
    """Where the files of ``name`` are, searching in the order of the module doc.

    ``name`` is a catalogued name (see :func:`~cnnlab.data.catalog.list_datasets`), a
    :class:`DatasetInfo` (e.g. a catalogue entry with other mirrors), or ``folder:PATH``.  With
    ``download=True`` a dataset found nowhere is fetched from its official location (or the
    mirrors in ``$CNNLAB_DATA_MIRROR``), verified, and stored (see :func:`download_dir`).
    Raises :class:`DataError` saying where cnnlab looked and how to get the files.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        path = Path(name[len(FOLDER_PREFIX) :]).expanduser()
        if not path.is_dir():
            raise DataError(f"{name}: {path} is not a folder (expected folder:PATH/TO/CLASSES)")
        return Location(name, path, "path")
    info = resolve(name)
    found, looked = locate(info, data_dir, must_exist=not download)
    if found is not None:
        return found
    target = download_dir(info, data_dir)
    if not download:
        raise _not_found(info, looked, target, "")
    try:
        format_of(info).download(info, target, progress, 30.0)
    except DataError as exc:
        raise _not_found(info, looked, target, str(exc)) from None
    found, _ = locate(dataclasses.replace(info, system_dirs=()), target)
    if found is None:  # pragma: no cover - every file was just verified
        raise _not_found(info, looked, target, f"{target}: the downloaded files are incomplete")
    return dataclasses.replace(found, origin="download")
