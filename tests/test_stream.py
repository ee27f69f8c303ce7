"""Streaming image folders from disk: real JPEG files, real worker processes.

The oracle is the in-memory pipeline: a streamed epoch must give the very batches (bit for
bit) that ``BatchPipeline`` gives for the same decoded images, seed and epoch, with 0, 1 or 2
workers, on every rank, from any start step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab._io import available_memory
from cnnlab.data import (
    Augment,
    BatchPipeline,
    Dataset,
    StreamDataset,
    StreamPipeline,
    _folder,
    load_dataset,
    pipeline_for,
)
from cnnlab.errors import DataError

AUG = Augment(crop_padding=2, flip=True, erase_p=0.5)


def write_jpegs(root, n_per_class=(70, 60, 50), sizes=((14, 18), (20, 16), (12, 12)), seed=0):
    """Class folders of JPEGs: smooth colour blobs plus noise, of mixed sizes; every fifth
    image grey (so ``mode="auto"`` must find colour and repeat the grey ones)."""
    rng = np.random.default_rng(seed)
    k = 0
    for c, n in enumerate(n_per_class):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(n):
            h, w = sizes[k % len(sizes)]
            yy, xx = np.mgrid[0:h, 0:w]
            base = 80 * c + 40 * np.sin(xx / (2 + i % 3)) + 30 * np.cos(yy / 3)
            rgb = base[..., None] + rng.normal(0, 25, (h, w, 3)) + [0, 30 * c, 60]
            px = np.clip(rgb, 0, 255).astype(np.uint8)
            img = Image.fromarray(px, "RGB")
            if k % 5 == 0:
                img = img.convert("L")
            img.save(folder / f"{i:04d}.jpg", quality=90)
            k += 1
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_jpegs(tmp_path_factory.mktemp("jpegs"))


@pytest.fixture(scope="module")
def both(folder):
    """The folder in memory and streamed, resized to 12x10."""
    mem = load_dataset(folder, image_size=(12, 10), stream=False)
    streamed = load_dataset(folder, image_size=(12, 10), stream=True, workers=0)
    return mem, streamed


def batches(pipeline, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in pipeline.epoch(epoch, start=start)]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xa.dtype == xb.dtype and torch.equal(xa, xb)
        assert torch.equal(ya, yb)


def test_a_streamed_folder_has_the_in_memory_facts_and_statistics(both):
    mem, streamed = both
    assert isinstance(mem, Dataset) and isinstance(streamed, StreamDataset)
    assert len(streamed) == len(mem) == 180
    assert streamed.image_shape == mem.image_shape == (3, 12, 10)  # colour found, grey repeated
    assert streamed.classes == mem.classes and torch.equal(streamed.labels, mem.labels)
    # All 180 images sampled: the statistics are exactly the in-memory ones.
    assert streamed.stats_images == 180
    assert streamed.mean == mem.mean and streamed.std == mem.std


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_streamed_batches_are_the_in_memory_ones_whatever_the_workers(both, workers):
    mem, streamed = both
    ref = BatchPipeline(mem, 32, augment=AUG, seed=5)
    stream = StreamPipeline(streamed, 32, augment=AUG, seed=5, workers=workers)
    assert len(stream) == len(ref) == 6
    assert stream.global_batch_sizes() == ref.global_batch_sizes()
    assert stream.samples_per_epoch == ref.samples_per_epoch == 180
    for epoch in (0, 3):
        assert_same(batches(stream, epoch), batches(ref, epoch))
    # and epochs differ: it is not the same batch every time
    assert not torch.equal(batches(stream, 0)[0][0], batches(stream, 1)[0][0])


def test_streaming_leaves_the_global_generators_alone(both):
    """Dropout draws from torch's global generator: a DataLoader started each epoch must
    not draw from it (it would unless given its own), or training would change."""
    state = torch.get_rng_state()
    batches(StreamPipeline(both[1], 64, augment=AUG, seed=2, workers=1), 0)
    assert torch.equal(torch.get_rng_state(), state)


def test_each_rank_streams_its_shard_and_together_they_cover_the_epoch_once(both):
    mem, streamed = both
    plain = StreamPipeline(streamed, 48, seed=1, workers=0, drop_last=True)
    ranks = [
        StreamPipeline(streamed, 16, seed=1, rank=r, world_size=3, workers=1, drop_last=True)
        for r in range(3)
    ]
    for r, pipe in enumerate(ranks):  # the in-memory pipeline's shards, bit for bit
        ref = BatchPipeline(mem, 16, seed=1, rank=r, world_size=3, drop_last=True)
        assert_same(batches(pipe, 2), batches(ref, 2))
    per_rank = [batches(p, 2) for p in ranks]
    for k, (x, y) in enumerate(batches(plain, 2)):  # the global batch, split across ranks
        assert torch.equal(torch.cat([b[k][0] for b in per_rank]), x)
        assert torch.equal(torch.cat([b[k][1] for b in per_rank]), y)


def test_the_validation_split_and_evaluation_order_are_the_in_memory_ones(both):
    mem, streamed = both
    (mt, mv), (st, sv) = mem.split_validation(0.2, seed=3), streamed.split_validation(0.2, seed=3)
    assert isinstance(sv, StreamDataset) and len(sv) == len(mv) == 36
    assert torch.equal(st.labels, mt.labels) and torch.equal(sv.labels, mv.labels)
    assert_same(
        batches(pipeline_for(sv, 10, shuffle=False, workers=2), 0),
        batches(pipeline_for(mv, 10, shuffle=False), 0),
    )
    assert isinstance(pipeline_for(mv, 10), BatchPipeline)
    assert not isinstance(pipeline_for(mv, 10), StreamPipeline)


def test_resuming_mid_epoch_skips_the_files_of_the_steps_done_without_opening_them(
    folder, tmp_path
):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "copy")
    streamed = load_dataset(copy, image_size=(12, 10), stream=True)
    pipe = StreamPipeline(streamed, 32, augment=AUG, seed=7, workers=1)
    full = batches(pipe, 4)
    assert_same(batches(pipe, 4, start=4), full[4:])
    # Damage a file that only the first two steps read: resuming at step 2 never opens it,
    # the whole epoch stops at it with an error naming it.
    first = pipe._draw(4)["order"][:64]  # the files of steps 0 and 1, in the epoch's order
    victim = streamed.path(int(first[5]))
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated JPEG
    assert_same(batches(pipe, 4, start=2), full[2:])
    with pytest.raises(DataError, match=str(victim.name)) as err:
        batches(pipe, 4)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_without_a_size_a_file_of_another_size_is_named(folder, tmp_path):
    root = tmp_path / "same"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (9, 7), (40 * i, 20 * c, 90)).save(root / f"c{c}" / f"{i}.png")
    streamed = load_dataset(root, stream=True, workers=0)
    assert streamed.image_shape == (3, 7, 9) and streamed.mode == "RGB"
    odd = root / "c1" / "3.png"
    Image.new("RGB", (8, 8)).save(odd)
    with pytest.raises(DataError, match=r"3\.png: 8x8 pixels .* 7x9"):
        batches(StreamPipeline(streamed, 4, workers=1), 0)
    with pytest.raises(DataError, match=r"mixed sizes"):  # the sample sees it at opening
        load_dataset(root, stream=True, workers=0)


def test_streaming_is_chosen_when_the_decoded_split_would_not_fit(folder):
    split = _folder.scan_split(folder)
    have = available_memory()
    assert have is not None  # Linux: MemAvailable
    # Ten times what is available now (available memory moves while other programs run;
    # a size that fitted after all would be decoded, in memory, for real).
    side = math.isqrt(10 * have // (2 * 3 * len(split.files)))
    assert not _folder.fits_in_memory(split, (side, side))
    assert _folder.fits_in_memory(split, (12, 10))
    # So the default (stream=None) keeps this small folder in memory,
    assert isinstance(load_dataset(folder, image_size=(12, 10)), Dataset)
    # and the in-memory path refuses the size it cannot hold, pointing to streaming.
    with pytest.raises(DataError, match="stream=True"):
        load_dataset(folder, image_size=(side, side), stream=False)
    # A size of which not even a batch fits is refused streamed too, before decoding.
    with pytest.raises(DataError, match="would need about .* even streamed"):
        load_dataset(folder, image_size=100_000)


def test_wrong_arguments_are_refused_naming_them(both):
    _, streamed = both
    with pytest.raises(DataError, match="workers -1"):
        StreamPipeline(streamed, 8, workers=-1)
    with pytest.raises(DataError, match="StreamPipeline reads a StreamDataset"):
        StreamPipeline(both[0], 8)
    with pytest.raises(DataError, match="stream=True .* image folders"):
        load_dataset("fashion-mnist", stream=True)
    with pytest.raises(DataError, match="stream 'yes'"):
        load_dataset("fashion-mnist", stream="yes")


def test_a_few_images_can_be_read_and_the_missing_tensor_is_explained(both):
    mem, streamed = both
    assert torch.equal(streamed.read([3, 0, 179]), mem.images[[3, 0, 179]])
    with pytest.raises(DataError, match="streamed from disk .* dataset.read"):
        streamed.images  # noqa: B018


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_streamed_batches_are_the_cpu_ones(both):
    """Pinned host memory and non-blocking copies must not change a bit."""
    _, streamed = both
    cpu = batches(StreamPipeline(streamed, 32, augment=AUG, seed=5, workers=1), 1)
    gpu = batches(StreamPipeline(streamed, 32, augment=AUG, seed=5, workers=1, device="cuda"), 1)
    assert_same([(x.cpu(), y.cpu()) for x, y in gpu], cpu)
