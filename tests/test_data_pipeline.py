"""The in-memory batch pipeline and the validation split, checked against per-sample oracles."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.data import Augment, BatchPipeline, Dataset, channel_stats
from cnnlab.data.catalog import MNIST
from cnnlab.errors import DataError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _indexed(n: int = 50, c: int = 1, h: int = 6, w: int = 6, seed: int = 0, info=None) -> Dataset:
    """n random images (pixels 1..255, so zero padding is recognisable), label i = index i."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    classes = tuple(f"img{i}" for i in range(n))
    return Dataset("indexed", "train", images, torch.arange(n), classes, info=info)


def _pixels(ds: Dataset, x: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: back to uint8 pixel values."""
    mean = torch.tensor(ds.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, dtype=torch.float64).view(1, -1, 1, 1)
    v = (x.double().cpu() * std + mean) * 255
    assert (v - v.round()).abs().max() < 1e-3  # float32 normalisation is exactly invertible
    return v.round().clamp(0, 255).to(torch.uint8)


def _epoch(p: BatchPipeline, e: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*p.epoch(e), strict=True)
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


@pytest.mark.parametrize("device", DEVICES)
def test_plain_batches_are_the_normalised_images(device):
    ds = _indexed(c=3)
    p = BatchPipeline(ds, 8, shuffle=False, device=device)
    assert len(p) == math.ceil(50 / 8)
    x, y = _epoch(p, 0)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and y.tolist() == list(range(50))
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (ds.images / 255.0 - mean) / std, rtol=0, atol=2e-6)
    # normalised training data has mean 0 and std 1 per channel
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(x.std(dim=(0, 2, 3), correction=0), torch.ones(3), rtol=0, atol=1e-5)


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    ds = _indexed()
    aug = Augment(crop_padding=2, flip=True, erase_p=0.5)
    a = BatchPipeline(ds, 7, augment=aug, seed=3)
    b = BatchPipeline(ds, 7, augment=aug, seed=3)
    xa, ya = _epoch(a, 4)
    xb, yb = _epoch(b, 4)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert sorted(ya.tolist()) == list(range(50))  # every sample exactly once
    assert not torch.equal(_epoch(a, 5)[1], ya)  # another epoch, another order
    assert not torch.equal(_epoch(BatchPipeline(ds, 7, augment=aug, seed=4), 4)[1], ya)
    # a resumed run that starts at step 3 sees exactly the rest of the epoch
    tail = [y for _, y in a.epoch(4, start=3)]
    assert torch.equal(torch.cat(tail), ya[3 * 7 :])


def _crops(img: torch.Tensor, pad: int) -> list[tuple[tuple[int, int, bool], torch.Tensor]]:
    """Every (dy, dx, flip) crop of one image after zero padding: the per-sample oracle."""
    c, h, w = img.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=img.dtype)
    padded[:, pad : pad + h, pad : pad + w] = img
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out += [((dy, dx, False), crop), ((dy, dx, True), crop.flip(-1))]
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("h", "w", "pad"), [(6, 6, 2), (3, 4, 5)], ids=["pad2", "pad>size"])
def test_crop_and_flip_match_the_per_sample_definition(device, h, w, pad):
    ds = _indexed(n=40, c=2, h=h, w=w)
    p = BatchPipeline(ds, 16, augment=Augment(crop_padding=pad, flip=True), device=device)
    seen = set()
    for e in range(3):
        x, y = _epoch(p, e)
        for pix, i in zip(_pixels(ds, x), y.tolist(), strict=True):
            matches = [k for k, crop in _crops(ds.images[i], pad) if torch.equal(crop, pix)]
            assert matches, f"output for image {i} is no padded crop of it"
            seen.update(matches)
    offsets = {(dy, dx) for dy, dx, _ in seen}
    possible = (2 * pad + 1) ** 2
    assert len(offsets) >= 0.4 * min(possible, 120)  # 120 draws per test
    assert {f for *_, f in seen} == {True, False}


def test_flip_only_mirrors_half_the_images():
    ds = _indexed(n=400, h=4, w=5)
    x, y = _epoch(BatchPipeline(ds, 100, augment=Augment(flip=True)), 0)
    pix = _pixels(ds, x)
    flipped = sum(not torch.equal(pix[k], ds.images[i]) for k, i in enumerate(y.tolist()))
    for k, i in enumerate(y.tolist()):
        assert torch.equal(pix[k], ds.images[i]) or torch.equal(pix[k], ds.images[i].flip(-1))
    assert 140 <= flipped <= 260  # Binomial(400, 1/2): mean 200, sd 10


def _mirrored(ds: Dataset, p: BatchPipeline, e: int) -> dict[int, bool]:
    """Image index -> was it mirrored in epoch ``e``."""
    x, y = _epoch(p, e)
    pix = _pixels(ds, x)
    return {i: not torch.equal(pix[k], ds.images[i]) for k, i in enumerate(y.tolist())}


def test_alternating_flips_mirror_each_image_in_every_other_epoch():
    ds = _indexed(n=400, h=4, w=5)
    p = BatchPipeline(ds, 64, augment=Augment(flip=True, alternate_flip=True), seed=3)
    e0, e1, e2, e3 = (_mirrored(ds, p, e) for e in range(4))
    assert 140 <= sum(e0.values()) <= 260  # a random half (Binomial(400, 1/2))
    assert all(e1[i] != e0[i] and e2[i] == e0[i] and e3[i] == e1[i] for i in e0)
    other = BatchPipeline(ds, 64, augment=Augment(flip=True, alternate_flip=True), seed=4)
    assert _mirrored(ds, other, 0) != e0  # the half depends on the seed
    # Random flips (the default) do not alternate: some image keeps its side two epochs.
    r = BatchPipeline(ds, 64, augment=Augment(flip=True), seed=3)
    r0, r1 = _mirrored(ds, r, 0), _mirrored(ds, r, 1)
    assert any(r0[i] == r1[i] for i in r0)


def test_a_recipe_alternates_flips_only_where_flips_keep_the_class():
    from cnnlab.train.recipe import Recipe

    recipe = Recipe(augment="standard", alternate_flip=True, crop_padding=0)
    clothes, digits = _indexed(n=40), _indexed(n=40, info=MNIST)
    assert recipe.augmentation(clothes) == Augment(flip=True, alternate_flip=True)
    p = BatchPipeline(digits, 8, augment=recipe.augmentation(digits), seed=0)
    assert not any(_mirrored(digits, p, 0).values()) and not any(_mirrored(digits, p, 1).values())


@pytest.mark.parametrize("device", DEVICES)
def test_random_erasing_sets_one_box_to_the_mean(device):
    ds = _indexed(n=600, c=3, h=16, w=16)
    aug = Augment(erase_p=0.5)
    x, y = _epoch(BatchPipeline(ds, 128, augment=aug, device=device), 0)
    plain = (ds.images[y] / 255.0 - torch.tensor(ds.mean).view(1, 3, 1, 1)) / torch.tensor(
        ds.std
    ).view(1, 3, 1, 1)
    erased = 0
    for k in range(len(y)):
        changed = (x[k] - plain[k]).abs().amax(0) > 1e-5  # (H, W)
        if not changed.any():
            continue
        erased += 1
        rows = changed.any(1).nonzero().flatten()
        cols = changed.any(0).nonzero().flatten()
        box = x[k][:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert torch.all(box == 0), "the erased region is one rectangle of zeros (the mean)"
        area = box.shape[1] * box.shape[2] / 256
        assert 0.5 / 256 <= area <= 0.5, area  # s in [0.02, 0.33], widened for rounding
    assert 240 <= erased <= 360  # Binomial(600, 1/2) minus the rare boxes that never fit


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_cover_everything_and_equal_one_big_batch(world_size):
    ds = _indexed(n=50)
    aug = Augment(crop_padding=1, flip=True, erase_p=0.3)
    ranks = [
        BatchPipeline(ds, 4, augment=aug, seed=7, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    single = BatchPipeline(ds, 4 * world_size, augment=aug, seed=7)
    assert len({len(p) for p in ranks}) == 1 and len(ranks[0]) == len(single)
    assert sum(p.samples_per_epoch for p in ranks) == 50
    for e in (0, 1):
        per_rank = [list(p.epoch(e)) for p in ranks]
        ys = torch.cat([y for batches in per_rank for _, y in batches])
        assert sorted(ys.tolist()) == list(range(50))  # disjoint, every sample once
        for step, (x1, y1) in enumerate(single.epoch(e)):
            x = torch.cat([per_rank[r][step][0] for r in range(world_size)])
            y = torch.cat([per_rank[r][step][1] for r in range(world_size)])
            assert torch.equal(y, y1) and torch.equal(x, x1)  # same augmentation too


def test_evaluation_shards_count_each_image_once_and_may_end_empty():
    ds = _indexed(n=5)
    ranks = [BatchPipeline(ds, 1, shuffle=False, rank=r, world_size=3) for r in range(3)]
    assert [len(p) for p in ranks] == [2, 2, 2] and ranks[0].global_batch_sizes() == [3, 2]
    shards = [[y.tolist() for _, y in p.epoch(0)] for p in ranks]
    assert shards == [[[0], [3]], [[1], [4]], [[2], []]]  # no padding duplicates
    x, _ = list(ranks[2].epoch(0))[1]
    assert x.shape == (0, 1, 6, 6)


def test_drop_last_drops_only_the_short_global_batch():
    ds = _indexed(n=50)
    p = BatchPipeline(ds, 8, drop_last=True)
    assert len(p) == 6 and all(len(y) == 8 for _, y in p.epoch(0))
    with pytest.raises(DataError, match="fewer than one global batch"):
        BatchPipeline(ds, 32, world_size=2, drop_last=True)


def test_digits_are_never_flipped():
    ds = _indexed(h=28, w=28, info=MNIST)
    assert Augment.standard(ds) == Augment(crop_padding=2, flip=False)
    with pytest.raises(DataError, match="a mirrored digit is no digit"):
        BatchPipeline(ds, 8, augment=Augment(flip=True))


def test_half_precision_output():
    x, _ = next(BatchPipeline(_indexed(), 8, dtype=torch.float16).epoch(0))
    assert x.dtype == torch.float16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size 0"),
        ({"batch_size": 4, "rank": 2, "world_size": 2}, "rank 2"),
        ({"batch_size": 4, "world_size": 0}, "world_size 0"),
        ({"batch_size": 4, "dtype": torch.int32}, "floating-point"),
    ],
)
def test_bad_pipeline_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        BatchPipeline(_indexed(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_padding": -1}, "crop_padding -1"),
        ({"erase_p": 1.5}, "erase_p 1.5"),
        ({"erase_area": (0.5, 0.2)}, "erase_area"),
        ({"erase_ratio": (0.0, 1.0)}, "erase_ratio"),
    ],
)
def test_bad_augment_settings(kwargs, message):
    with pytest.raises(DataError, match=message):
        Augment(**kwargs)


def test_bad_epoch_and_start():
    p = BatchPipeline(_indexed(), 8)
    with pytest.raises(DataError, match="epoch -1"):
        next(p.epoch(-1))
    with pytest.raises(DataError, match="start step 99"):
        next(p.epoch(0, start=99))


# ---- the dataset object and its validation split -----------------------------------------------


def _labelled(counts: list[int]) -> Dataset:
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    images = torch.arange(len(labels)).remainder(256).to(torch.uint8).view(-1, 1, 1, 1)
    return Dataset("toy", "train", images.expand(-1, 1, 2, 2).contiguous(), labels, ("a", "b", "c"))


def test_validation_split_is_stratified_exact_and_seeded():
    ds = _labelled([50, 30, 21])
    train, val = ds.split_validation(0.1, seed=0)
    assert len(val) == round(0.1 * 101) == 10 and len(train) == 91
    assert val.class_counts() == [5, 3, 2]  # 5, 3, 2.1 -> largest remainders fill the total
    assert val.split == "val" and train.split == "train" and val.mean == ds.mean
    again_train, again_val = ds.split_validation(0.1, seed=0)
    assert torch.equal(val.images, again_val.images) and torch.equal(
        train.labels, again_train.labels
    )
    ids = lambda d: set(d.images[:, 0, 0, 0].tolist()) | set()  # noqa: E731
    assert not ids(train) & ids(val)
    _, other = ds.split_validation(0.1, seed=1)
    assert not torch.equal(other.images, val.images)
    for bad in (0, 1, 1.5, 0.001):
        with pytest.raises(DataError, match="validation"):
            ds.split_validation(bad)


def test_dataset_validates_its_fields():
    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(DataError, match="images must be a uint8 tensor"):
        Dataset("d", "train", images.float(), torch.zeros(3, dtype=torch.int64), ("a",))
    with pytest.raises(DataError, match="labels must be an int64"):
        Dataset("d", "train", images, torch.zeros(3, dtype=torch.int32), ("a",))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        Dataset("d", "train", images, torch.zeros(2, dtype=torch.int64), ("a",))
    with pytest.raises(DataError, match="label 1 of image 2 is outside the 1 classes"):
        Dataset("d", "train", images, torch.tensor([0, 0, 1]), ("a",))
    with pytest.raises(DataError, match="mean/std need 1 values"):
        Dataset("d", "train", images, torch.zeros(3, dtype=torch.int64), ("a",), (0.1, 0.2), (1, 1))


def test_channel_stats_are_exact():
    images = torch.tensor([0, 255, 255, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    mean, std = channel_stats(images)
    assert mean == (0.75,) and std[0] == pytest.approx(math.sqrt(0.75 * 0.25), abs=1e-15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_gives_bit_identical_batches(device="cuda"):
    """Parameters are drawn on the CPU, so a (seed, epoch) means the same batches anywhere."""
    ds = _indexed(n=300, c=3, h=12, w=12)
    aug = Augment(crop_padding=3, flip=True, erase_p=0.5)
    cpu = _epoch(BatchPipeline(ds, 64, augment=aug, seed=5), 2)
    gpu = _epoch(BatchPipeline(ds, 64, augment=aug, seed=5, device=device), 2)
    assert torch.equal(cpu[1], gpu[1]) and torch.equal(cpu[0], gpu[0])
