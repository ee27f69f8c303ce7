"""The datasets cnnlab knows by name: their files, published hashes, classes and homes.

Pure data and no torch, so ``cnnlab data list`` stays fast.  Every hash below is a published
one (or derived from the published archives and cross-checked in several public places); the
table says which:

* Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): ``sha256`` and ``md5`` of
  the *decompressed* IDX payloads.  Debian's ``dataset-fashion-mnist`` re-compresses the
  ``.gz`` files (no stored file name, another mtime), so the container hashes published by
  Zalando, torchvision and Keras reject Debian's files although the data is identical; only
  the payload hash is a fair test.  ``gz_md5`` keeps Zalando's container hashes as a second,
  weaker way to recognise an untouched upstream download.
* MNIST (LeCun et al. 1998): only the ``.gz`` container md5s are published (torchvision's
  table).  A recompressed or unpacked MNIST copy therefore loads as *unverified* (its
  structure is still fully checked), never as a mismatch.
* CIFAR-10/100 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images"):
  md5 of each extracted batch file and of the ``.tar.gz`` archive, as torchvision pins them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from cnnlab.errors import DataError

__all__ = [
    "DataFile",
    "DatasetInfo",
    "CATALOG",
    "dataset_info",
    "list_datasets",
]


@dataclass(frozen=True)
class DataFile:
    """One file of a catalogued dataset.

    ``name`` is the file's canonical, uncompressed name; ``split`` is ``"train"``, ``"test"``
    or ``"meta"``; ``role`` is ``"images"``, ``"labels"`` (IDX) or ``"batch"``/``"meta"``
    (CIFAR).  ``size`` is the decompressed payload size in bytes.  ``sha256``/``md5`` are
    hashes of that payload, ``gz_md5`` of the upstream ``.gz`` container (``None`` where not
    published).
    """

    name: str
    split: str
    role: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    gz_md5: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What cnnlab knows about a named dataset before reading any file.

    ``kind`` picks the reader (``"idx"`` or ``"cifar"``).  ``image_shape`` is (C, H, W).
    ``splits`` maps split name to its published number of images.  ``urls`` are base URLs of
    the official location and its well-known mirrors, tried in order; ``archive`` (CIFAR) is the
    one file downloaded there, unpacked into ``archive_dir``.  ``system_dirs`` are known
    locations outside cnnlab (distribution packages, other tools' caches), searched after the
    user's own.  ``hflip`` says whether a horizontal flip keeps an image in its class (false
    for digits).  ``crop_padding`` is cnnlab's default zero padding for random-crop
    augmentation.  ``torchvision_dir`` is the folder name torchvision uses (``root/NAME/raw``).
    """

    name: str
    title: str
    kind: str
    image_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    splits: tuple[tuple[str, int], ...]
    files: tuple[DataFile, ...]
    reference: str
    homepage: str
    license: str
    urls: tuple[str, ...] = ()
    archive: str | None = None
    archive_md5: str | None = None
    archive_dir: str | None = None
    system_dirs: tuple[tuple[str, str], ...] = ()  # (path, what put it there)
    debian_package: str | None = None
    hflip: bool = True
    crop_padding: int = 0
    torchvision_dir: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split_size(self, split: str) -> int | None:
        return dict(self.splits).get(split)

    def files_of(self, split: str) -> tuple[DataFile, ...]:
        return tuple(f for f in self.files if f.split == split)


def _idx_files(
    table: dict[str, tuple[int, str | None, str | None, str | None]],
) -> tuple[DataFile, ...]:
    files = []
    for name, (size, sha256, md5, gz_md5) in table.items():
        split = "train" if name.startswith("train") else "test"
        role = "images" if "images" in name else "labels"
        files.append(DataFile(name, split, role, size, sha256, md5, gz_md5))
    return tuple(files)


_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# CIFAR-100's 100 "fine" classes in label order (alphabetical, as in the archive's `meta`).
_CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()  # noqa: SIM905
)

_IDX_SIZES = {"train-images": 47_040_016, "train-labels": 60_008}
_IDX_SIZES |= {"t10k-images": 7_840_016, "t10k-labels": 10_008}

FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    title="Fashion-MNIST (Zalando article images, 28x28 grey)",
    kind="idx",
    image_shape=(1, 28, 28),
    classes=_FASHION_CLASSES,
    splits=(("train", 60_000), ("test", 10_000)),
    files=_idx_files(
        {
            "train-images-idx3-ubyte": (
                _IDX_SIZES["train-images"],
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            "train-labels-idx1-ubyte": (
                _IDX_SIZES["train-labels"],
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "9018921c3c673c538a1fc5bad174d6f9",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            "t10k-images-idx3-ubyte": (
                _IDX_SIZES["t10k-images"],
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            "t10k-labels-idx1-ubyte": (
                _IDX_SIZES["t10k-labels"],
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                "15d484375f8d13e6eb1aabb0c3f46965",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        }
    ),
    reference="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    license="MIT (Zalando SE)",
    urls=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    system_dirs=(
        ("/usr/share/datasets/fashion-mnist", "Debian package dataset-fashion-mnist"),
        ("~/.keras/datasets/fashion-mnist", "Keras cache"),
    ),
    debian_package="dataset-fashion-mnist",
    hflip=True,  # garments and shoes stay in their class when mirrored
    crop_padding=2,
    torchvision_dir="FashionMNIST",
)

MNIST = DatasetInfo(
    name="mnist",
    title="MNIST handwritten digits (28x28 grey)",
    kind="idx",
    image_shape=(1, 28, 28),
    classes=tuple(str(d) for d in range(10)),
    splits=(("train", 60_000), ("test", 10_000)),
    files=_idx_files(
        {
            "train-images-idx3-ubyte": (
                _IDX_SIZES["train-images"],
                None,
                None,
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            "train-labels-idx1-ubyte": (
                _IDX_SIZES["train-labels"],
                None,
                None,
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            "t10k-images-idx3-ubyte": (
                _IDX_SIZES["t10k-images"],
                None,
                None,
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            "t10k-labels-idx1-ubyte": (
                _IDX_SIZES["t10k-labels"],
                None,
                None,
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        }
    ),
    reference="LeCun, Bottou, Bengio & Haffner 1998, Proc. IEEE 86(11)",
    homepage="http://yann.lecun.com/exdb/mnist/",
    license="CC BY-SA 3.0 (as stated by the mirrors; the original page states none)",
    # LeCun's own host often answers HTTP 403 (pytorch/vision#1938); torchvision's S3 mirror first.
    urls=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    hflip=False,  # a mirrored 2, 3, 4, 5, 7 or 9 is no digit
    crop_padding=2,
    torchvision_dir="MNIST",
)

_CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}

CIFAR10 = DatasetInfo(
    name="cifar10",
    title="CIFAR-10 (32x32 colour, 10 classes)",
    kind="cifar",
    image_shape=(3, 32, 32),
    classes=_CIFAR10_CLASSES,
    splits=(("train", 50_000), ("test", 10_000)),
    files=(
        *(DataFile(n, "train", "batch", md5=m) for n, m in _CIFAR10_BATCH_MD5.items()),
        DataFile("test_batch", "test", "batch", md5="40351d587109b95175f43aff81a1287e"),
        DataFile("batches.meta", "meta", "meta", md5="5ff9c542aee3614f3951f8cda6e48888"),
    ),
    reference="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    license="no licence stated by the authors",
    urls=("https://www.cs.toronto.edu/~kriz/",),
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    archive_dir="cifar-10-batches-py",
    system_dirs=(("~/.keras/datasets/cifar-10-batches-py", "Keras cache"),),
    hflip=True,
    crop_padding=4,  # He et al. 2015, section 4.2: pad 4, random 32x32 crop, flip
)

CIFAR100 = DatasetInfo(
    name="cifar100",
    title="CIFAR-100 (32x32 colour, 100 fine classes)",
    kind="cifar",
    image_shape=(3, 32, 32),
    classes=_CIFAR100_CLASSES,
    splits=(("train", 50_000), ("test", 10_000)),
    files=(
        DataFile("train", "train", "batch", md5="16019d7e3df5f24257cddd939b257f8d"),
        DataFile("test", "test", "batch", md5="f0ef6b0ae62326f3e7ffdfab6717acfc"),
        DataFile("meta", "meta", "meta", md5="7973b15100ade9c7d40fb424638fde48"),
    ),
    reference="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    license="no licence stated by the authors",
    urls=("https://www.cs.toronto.edu/~kriz/",),
    archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    archive_dir="cifar-100-python",
    system_dirs=(("~/.keras/datasets/cifar-100-python", "Keras cache"),),
    hflip=True,
    crop_padding=4,
)

# name -> info, in the order `cnnlab data list` shows them.
CATALOG: dict[str, DatasetInfo] = {d.name: d for d in (FASHION_MNIST, MNIST, CIFAR10, CIFAR100)}

# Spellings users type for the same dataset (torchvision's and Keras's names among them).
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
}


def list_datasets() -> list[str]:
    """Names of the catalogued datasets (``folder:PATH`` datasets are not listed)."""
    return list(CATALOG)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a catalogued dataset; raises :class:`DataError` if unknown."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in CATALOG:
        return CATALOG[key]
    close = difflib.get_close_matches(key, [*CATALOG, *_ALIASES], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    raise DataError(
        f"unknown dataset {name!r}{hint} Known datasets: {', '.join(CATALOG)}, "
        "or folder:PATH for an image folder with one subfolder per class"
    )
