"""The file formats of catalogued datasets, as one table: how each is laid out, loaded,
verified, downloaded and obtained by hand.

A catalogue entry names its format (:attr:`DatasetInfo.kind`); :func:`format_of` gives the
:class:`Format` with everything that differs between formats, so the code that finds, loads
and downloads datasets never asks which format it holds.  Adding a format is one entry here
(plus its reader).

The one integrity check, :func:`check_file`, serves loading and downloading alike: it compares
the digests of what was read with the published hashes of a :class:`DataFile` and returns a
:class:`FileCheck` (``verified``, ``unverified`` or ``mismatch``).

No torch here (``cnnlab data list`` stays fast); the numpy readers are imported when a file
is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab._io import atomic_write_bytes, file_hash
from cnnlab.data._download import ProgressFn, fetch_verified
from cnnlab.data.catalog import CATALOG, DataFile, DatasetInfo
from cnnlab.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CIFAR",
    "FORMATS",
    "IDX",
    "Digests",
    "FileCheck",
    "Format",
    "Loaded",
    "Location",
    "check_file",
    "format_of",
    "integrity_of",
    "require_verified",
]


@dataclass(frozen=True)
class Location:
    """Where a dataset was found.

    ``origin`` says which rule found it ("--data-dir", "$CNNLAB_DATA", "user cache", a system
    location's description, "download", or "path" for ``folder:PATH``).  ``files`` maps each
    canonical file name to the path found (possibly ``.gz``); ``archive`` is set instead when a
    CIFAR archive is read in place.
    """

    name: str
    directory: Path
    origin: str
    files: tuple[tuple[str, Path], ...] = ()
    archive: Path | None = None

    def path_of(self, name: str) -> Path:
        for canonical, path in self.files:
            if canonical == name:
                return path
        raise KeyError(name)

    def describe(self) -> str:
        where = self.archive if self.archive is not None else self.directory
        return f"{where} ({self.origin})"


@dataclass(frozen=True)
class FileCheck:
    """The integrity verdict for one file.

    ``status`` is ``"verified"`` (a published hash matches), ``"unverified"`` (no published
    hash applies; the structure was still fully checked) or ``"mismatch"`` (a published hash
    differs; only ever kept when loading with ``verify=False``).  ``detail`` says which hash.
    """

    file: str
    path: Path
    status: str
    detail: str


@dataclass(frozen=True)
class Digests:
    """Hashes of what was read from one file: ``sha256`` of the decompressed content, ``md5``
    of the content as stored, ``gz_md5`` of a ``.gz`` container (``None``: not computed or
    not applicable)."""

    sha256: str | None = None
    md5: str | None = None
    gz_md5: str | None = None


# What a format's loader returns: images (N, C, H, W) uint8, labels (N,) int64, class names,
# one FileCheck per file read.
Loaded = tuple["np.ndarray", "np.ndarray", tuple[str, ...], tuple[FileCheck, ...]]


@dataclass(frozen=True)
class Format:
    """Everything that differs between dataset file formats (see the module doc).

    * ``layouts(info, folder)``: the folders to try inside a searched folder, in order;
    * ``candidates(name)``: the file names a canonical file may have on disk;
    * ``in_place(info, folder)``: a single file (an archive) read as it is, or None;
    * ``load(info, location, split, verify)``: the :data:`Loaded` arrays of one split;
    * ``download(info, target, progress, timeout)``: fetch every file into ``target``,
      verified before it is kept;
    * ``to_get(info)``: what a user downloads by hand, for the not-found message;
    * ``content``: what the published hashes cover, for mismatch messages.
    """

    name: str
    layouts: Callable[[DatasetInfo, Path], list[Path]]
    candidates: Callable[[str], list[str]]
    in_place: Callable[[DatasetInfo, Path], Path | None]
    load: Callable[[DatasetInfo, Location, str, bool], Loaded]
    download: Callable[[DatasetInfo, Path, ProgressFn | None, float], None]
    to_get: Callable[[DatasetInfo], str]
    content: str


# --------------------------------------------------------------------------------------------
# The one integrity check

# Payload sha256 -> (dataset, file), to name the dataset a mismatching file really belongs to.
_KNOWN_PAYLOADS = {
    f.sha256: (d.name, f.name) for d in CATALOG.values() for f in d.files if f.sha256 is not None
}


def _mismatch(info: DatasetInfo, f: DataFile, check: FileCheck, sha256: str | None) -> str:
    other = _KNOWN_PAYLOADS.get(sha256) if sha256 else None
    if other is not None and other != (info.name, f.name):
        return f"{check.path}: this is {other[0]}'s {other[1]}, not {info.name}'s {f.name}"
    fmt = format_of(info)
    note = (
        " (a differently compressed copy would still match: cnnlab hashes the decompressed data)"
        if fmt.content.startswith("decompressed")
        else ""
    )
    detail = f"{check.detail}. " if check.detail else ""
    return (
        f"{check.path}: {detail}The {fmt.content} differs from the published {info.name} "
        f"data{note}. Replace the file, or load it anyway with verify=False (--no-verify)"
    )


def check_file(
    info: DatasetInfo, f: DataFile, path: Path, digests: Digests, verify: bool
) -> FileCheck:
    """The verdict on one file from its digests and ``f``'s published hashes.

    The strongest applicable hash decides: the sha256 of the decompressed content, else the
    md5 of the stored content, else the md5 of an upstream ``.gz`` container (a recompressed
    copy then loads as unverified, not as a mismatch).  A mismatch, or a file that is another
    catalogued dataset's, raises :class:`DataError` when ``verify``.
    """
    check = None
    if f.sha256 is not None and digests.sha256 is not None:
        if digests.sha256 == f.sha256:
            return FileCheck(f.name, path, "verified", "sha256 of the decompressed data matches")
        detail = f"sha256 of the decompressed data is {digests.sha256}, published {f.sha256}"
        check = FileCheck(f.name, path, "mismatch", detail)
    elif f.md5 is not None and digests.md5 is not None:
        if digests.md5 == f.md5:
            return FileCheck(f.name, path, "verified", "md5 matches the published one")
        check = FileCheck(f.name, path, "mismatch", f"md5 is {digests.md5}, published {f.md5}")
    if check is not None:
        if verify:
            raise DataError(_mismatch(info, f, check, digests.sha256))
        return check
    if verify and _KNOWN_PAYLOADS.get(digests.sha256) not in (None, (info.name, f.name)):
        raise DataError(_mismatch(info, f, FileCheck(f.name, path, "mismatch", ""), digests.sha256))
    if f.gz_md5 is not None and digests.gz_md5 == f.gz_md5:
        return FileCheck(f.name, path, "verified", "md5 of the .gz file matches the upstream one")
    why = "no published hash of the " + format_of(info).content
    if f.gz_md5 is not None and digests.gz_md5 is not None:
        why += "; the .gz file differs from upstream's (recompressed copies do)"
    return FileCheck(f.name, path, "unverified", why)


def integrity_of(checks: Iterable[FileCheck]) -> str:
    """The verdict on a set of files: ``"mismatch"`` if any differed, ``"verified"`` if every
    one matched, else ``"unverified"`` (also for no files at all)."""
    statuses = {c.status for c in checks}
    if "mismatch" in statuses:
        return "mismatch"
    return "verified" if statuses == {"verified"} else "unverified"


def require_verified(info: DatasetInfo, f: DataFile, check: FileCheck) -> None:
    """A download keeps a file only if every published hash of it matches: raise
    :class:`DataError` for a mismatch, or for an unverified file that has a published hash."""
    published = f.sha256 or f.md5 or f.gz_md5
    if check.status == "mismatch" or (check.status == "unverified" and published):
        raise DataError(
            f"the {format_of(info).content} differs from the published {f.name} ({check.detail})"
        )


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST): four files side by side, plain or gzipped


def _idx_layouts(info: DatasetInfo, folder: Path) -> list[Path]:
    return [folder] + ([folder / info.torchvision_dir / "raw"] if info.torchvision_dir else [])


def _idx_candidates(name: str) -> list[str]:
    dotted = name.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some mirrors ship it
    return [name, name + ".gz", dotted, dotted + ".gz"]


def _read_idx_checked(info: DatasetInfo, f: DataFile, path: Path, ndim: int | None, verify: bool):
    from cnnlab.data._idx import read_idx

    parsed = read_idx(path, ndim=ndim, what=f.name if ndim is None else f"{f.split} {f.role}")
    check = check_file(info, f, path, Digests(sha256=parsed.sha256, gz_md5=parsed.gz_md5), verify)
    return parsed, check


def _load_idx(info: DatasetInfo, loc: Location, split: str, verify: bool) -> Loaded:
    import numpy as np

    files = {f.role: f for f in info.files_of(split)}
    img_f, lab_f = files["images"], files["labels"]
    images, img_check = _read_idx_checked(info, img_f, loc.path_of(img_f.name), 3, verify)
    labels, lab_check = _read_idx_checked(info, lab_f, loc.path_of(lab_f.name), 1, verify)
    for parsed, kind in ((images, "images"), (labels, "labels")):
        if parsed.type_code != 0x08:
            raise DataError(
                f"{parsed.path}: IDX type code 0x{parsed.type_code:02X}; {info.name} {kind} are "
                "unsigned bytes (type 0x08)"
            )
    x, y = images.array, labels.array
    _, h, w = info.image_shape
    if x.shape[1:] != (h, w):
        raise DataError(
            f"{images.path}: images are {x.shape[1]}x{x.shape[2]}, {info.name}'s are {h}x{w}"
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"{images.path} holds {x.shape[0]} images but {labels.path} holds {y.shape[0]} "
            "labels; they must pair up one to one"
        )
    bad = np.flatnonzero(y >= info.num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{labels.path}: label {int(y[i])} at index {i} (byte {8 + i}) is outside the "
            f"{info.num_classes} classes (0..{info.num_classes - 1}); {bad.size} such label(s)"
        )
    return x[:, None], y.astype(np.int64), info.classes, (img_check, lab_check)


def _download_idx(
    info: DatasetInfo, target: Path, progress: ProgressFn | None, timeout: float
) -> None:
    for f in info.files:
        dest = target / (f.name + ".gz")

        def check(path: Path, f: DataFile = f) -> None:
            _, verdict = _read_idx_checked(info, f, path, None, verify=False)
            require_verified(info, f, verdict)

        if dest.is_file():
            try:
                check(dest)
                continue  # kept from an earlier, interrupted download
            except DataError:
                dest.unlink()
        fetch_verified(info, f.name + ".gz", dest, check, progress, timeout)


def _idx_to_get(info: DatasetInfo) -> str:
    names = ", ".join(f.name + ".gz" for f in info.files)
    return f"the {len(info.files)} files {names}"


IDX = Format(
    name="idx",
    layouts=_idx_layouts,
    candidates=_idx_candidates,
    in_place=lambda info, folder: None,
    load=_load_idx,
    download=_download_idx,
    to_get=_idx_to_get,
    content="decompressed content",
)


# --------------------------------------------------------------------------------------------
# CIFAR (python version): pickled batches, unpacked or inside the .tar.gz

# CIFAR label and class-name keys by number of classes.
_CIFAR_KEYS = {10: ("labels", "label_names"), 100: ("fine_labels", "fine_label_names")}


def _cifar_layouts(info: DatasetInfo, folder: Path) -> list[Path]:
    return [folder] + ([folder / info.archive_dir] if info.archive_dir else [])


def _cifar_in_place(info: DatasetInfo, folder: Path) -> Path | None:
    if info.archive and (folder / info.archive).is_file():
        return folder / info.archive
    return None


def _read_cifar_bytes(loc: Location, info: DatasetInfo, names: list[str]) -> dict[str, tuple]:
    """name -> (path for messages, bytes)."""
    from cnnlab.data import _cifar

    if loc.archive is not None:
        data = _cifar.read_tar_members(loc.archive, info.archive_dir or "", names)
        return {n: (Path(f"{loc.archive}:{info.archive_dir}/{n}"), data[n]) for n in names}
    out = {}
    for n in names:
        path = loc.path_of(n)
        try:
            size = path.stat().st_size
            if size > _cifar.MAX_MEMBER_BYTES:
                raise DataError(f"{path}: {size:,} bytes, more than any CIFAR file")
            out[n] = (path, path.read_bytes())
        except OSError as exc:
            raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return out


def _md5(data: bytes) -> Digests:
    import hashlib

    return Digests(md5=hashlib.md5(data, usedforsecurity=False).hexdigest())


def _load_cifar(info: DatasetInfo, loc: Location, split: str, verify: bool) -> Loaded:
    import numpy as np

    from cnnlab.data import _cifar

    label_key, names_key = _CIFAR_KEYS[info.num_classes]
    wanted = [*info.files_of(split), *info.files_of("meta")]
    raw = _read_cifar_bytes(loc, info, [f.name for f in wanted])
    checks = tuple(
        check_file(info, f, raw[f.name][0], _md5(raw[f.name][1]), verify) for f in wanted
    )
    meta = next(f for f in wanted if f.role == "meta")
    meta_path, meta_bytes = raw[meta.name]
    classes = _cifar.parse_meta(
        meta_bytes, str(meta_path), key=names_key, num_classes=info.num_classes
    )
    xs, ys = [], []
    for f in wanted:
        if f.role == "batch":
            path, data = raw[f.name]
            x, y = _cifar.parse_batch(
                data, str(path), label_key=label_key, num_classes=info.num_classes
            )
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys), classes, checks


def _download_cifar(
    info: DatasetInfo, target: Path, progress: ProgressFn | None, timeout: float
) -> None:
    from cnnlab.data._cifar import read_tar_members

    if info.archive is None or info.archive_dir is None:  # pragma: no cover - catalogue
        raise DataError(f"{info.name}: no download archive is known")
    names = [f.name for f in info.files]

    def check(path: Path) -> None:
        if info.archive_md5 is not None and file_hash(path, "md5") != info.archive_md5:
            raise DataError(f"archive md5 differs from the published {info.archive_md5}")
        members = read_tar_members(path, info.archive_dir, names)
        for f in info.files:
            require_verified(info, f, check_file(info, f, path, _md5(members[f.name]), False))

    archive = target / info.archive
    fetch_verified(info, info.archive, archive, check, progress, timeout)
    # Unpack the verified members (and nothing else) into archive_dir, then drop the archive.
    members = read_tar_members(archive, info.archive_dir, names)
    out_dir = target / info.archive_dir
    out_dir.mkdir(exist_ok=True)
    for name, data in members.items():
        atomic_write_bytes(out_dir / name, data)
    archive.unlink()


CIFAR = Format(
    name="cifar",
    layouts=_cifar_layouts,
    candidates=lambda name: [name],
    in_place=_cifar_in_place,
    load=_load_cifar,
    download=_download_cifar,
    to_get=lambda info: f"{info.archive} (unpacked or not)",
    content="content",
)


# name -> format, as DatasetInfo.kind names it.
FORMATS: dict[str, Format] = {f.name: f for f in (IDX, CIFAR)}


def format_of(info: DatasetInfo) -> Format:
    """The :class:`Format` of a catalogue entry; :class:`DataError` for an unknown kind."""
    try:
        return FORMATS[info.kind]
    except KeyError:
        raise DataError(
            f"{info.name}: unknown dataset format {info.kind!r}; known formats: "
            f"{', '.join(FORMATS)}"
        ) from None
