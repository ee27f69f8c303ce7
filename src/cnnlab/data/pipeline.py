"""The in-memory batch pipeline: uint8 data on the device, whole-batch augmentation.

``BatchPipeline(train, batch_size=128, device="cuda", augment=Augment.standard(train))``
moves the uint8 images to the device once.  ``pipeline.epoch(e)`` then yields ``(x, y)``:
``x`` float (B, C, H, W), normalised with the dataset's mean/std, ``y`` int64 (B,), both on
the device.  No Python loop over samples and no worker processes (measured on a 2-core CPU: a
per-sample DataLoader at about 3.6k images/s on two cores, in-memory slicing at over 400k):

* at the start of an epoch, the rank's images are gathered once and cropped/flipped in
  groups of equal offset (a fixed number of whole-tensor copies per epoch);
* per batch, one gather of uint8 rows, one multiply-add that converts and normalises, and
  for erasing one outer product and one multiply-add.

Determinism: the epoch order and every augmentation parameter are drawn on the CPU from a
generator seeded by (seed, epoch) alone, for the whole epoch at once, then sent to the device.
So a (seed, epoch) gives the same batches on any device, with any ``world_size``, and a
resumed run can skip to a step (``epoch(e, start=k)``) and see exactly what it would have.

Augmentations (all off unless asked; :meth:`Augment.standard` gives each dataset's usual set):

* random crop with zero padding: pad ``crop_padding`` zero pixels on each side, crop the
  original size at a uniform offset (He et al. 2015, section 4.2, for CIFAR: padding 4);
* horizontal flip with probability 1/2, only where it keeps the class (not for digits); with
  ``alternate_flip`` each image is instead mirrored in every other epoch, a random half of
  the images in the even epochs and the other half in the odd ones (Jordan 2024, airbench:
  over any two epochs the network sees each image both ways, where random flips show a
  quarter of them one way only);
* random erasing (Zhong et al. 2017, arXiv:1708.04896): with probability ``erase_p`` a
  rectangle of area fraction in ``erase_area`` and aspect ratio in ``erase_ratio``
  (log-uniform) is set to 0 *after* normalisation, i.e. to the dataset's mean colour.
  Deviation from the paper, which fills with random values: the mean fill (torchvision's
  default) needs no per-pixel random numbers, which keeps the epoch's randomness small enough
  to draw up front on the CPU.  As in torchvision, up to 10 boxes are drawn per image and the
  first that fits is used; an image with none that fits is left unerased.

Sharding for distributed training (``rank``/``world_size``): step k of every rank covers the
k-th *global* batch of ``batch_size * world_size`` positions of the epoch's order, split into
contiguous shards that differ in size by at most one.  Every sample is seen exactly once per
epoch by exactly one rank, every rank runs the same number of steps (so collective operations
stay matched), and with ``shuffle=False`` an evaluation counts each test image exactly once:
no padding duplicates as in ``DistributedSampler``.  The price: the final step's shards can
be smaller than ``batch_size``, even empty when fewer samples than ranks remain; weight the
loss by the global count (``global_batch_sizes()``), or use ``drop_last=True`` for training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cnnlab.data.dataset import Dataset, derive_seed
from cnnlab.errors import DataError

__all__ = ["Augment", "BatchPipeline"]

_ERASE_TRIES = 10  # boxes drawn per image before giving up, as torchvision's RandomErasing


@dataclass(frozen=True)
class Augment:
    """Whole-batch augmentation settings (see the module doc).  ``Augment()`` is none."""

    crop_padding: int = 0
    flip: bool = False
    erase_p: float = 0.0
    alternate_flip: bool = False
    erase_area: tuple[float, float] = (0.02, 0.33)  # Zhong et al.: s_l, s_h
    erase_ratio: tuple[float, float] = (0.3, 1 / 0.3)  # Zhong et al.: r_1, 1/r_1

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise DataError(f"crop_padding {self.crop_padding!r}: expected an int >= 0")
        if not 0.0 <= float(self.erase_p) <= 1.0:
            raise DataError(f"erase_p {self.erase_p!r}: expected a probability in [0, 1]")
        lo, hi = self.erase_area
        if not 0.0 < lo <= hi < 1.0:
            raise DataError(f"erase_area {self.erase_area!r}: expected 0 < low <= high < 1")
        lo, hi = self.erase_ratio
        if not 0.0 < lo <= hi:
            raise DataError(f"erase_ratio {self.erase_ratio!r}: expected 0 < low <= high")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.erase_p > 0

    @classmethod
    def standard(cls, dataset: Dataset, erase_p: float = 0.0) -> Augment:
        """The usual set for ``dataset``: crop with its catalogue padding (CIFAR 4, MNIST-like
        2; image folders H/8), flip where the catalogue allows it, erasing as given."""
        info = dataset.info
        padding = info.crop_padding if info is not None else max(1, dataset.image_shape[1] // 8)
        flip = info.hflip if info is not None else True
        return cls(crop_padding=padding, flip=flip, erase_p=erase_p)


def _device(device: object) -> torch.device:
    """``device`` as a torch.device this process can use, or a DataError saying what is."""
    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        raise DataError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(
            f"device {device!r}: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is "
            "False); use 'cpu'"
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DataError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return dev


class BatchPipeline:
    """Shuffled, augmented, normalised mini-batches of a :class:`Dataset`, kept on a device.

    ``batch_size`` is per rank.  ``shuffle=False`` gives the dataset order (evaluation);
    ``drop_last`` drops a final global batch smaller than ``batch_size * world_size``.
    ``dtype`` is the dtype of ``x`` (float32; float16/bfloat16 for mixed precision on GPUs).
    The dataset's images are copied to ``device`` once, at construction.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        augment: Augment | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size {batch_size!r}: expected an int >= 1")
        if not isinstance(world_size, int) or world_size < 1:
            raise DataError(f"world_size {world_size!r}: expected an int >= 1")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise DataError(f"rank {rank!r}: expected 0 <= rank < world_size ({world_size})")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise DataError(f"dtype {dtype}: expected a floating-point torch dtype")
        if augment is not None and not isinstance(augment, Augment):
            raise DataError(
                f"augment {augment!r}: expected an Augment (Augment.standard(dataset), "
                "Augment(flip=True, crop_padding=4), ...) or None"
            )
        augment = augment or Augment()
        if augment.flip and dataset.info is not None and not dataset.info.hflip:
            raise DataError(
                f"{dataset.name}: horizontal flips change the class (a mirrored digit is no "
                "digit); use Augment(flip=False)"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = _device(device)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.dtype = dtype
        self._hold(dataset)
        c = dataset.image_shape[0]
        mean = torch.tensor(dataset.mean, dtype=torch.float64)
        std = torch.tensor(dataset.std, dtype=torch.float64)
        # x_float = pixel * scale + shift == (pixel / 255 - mean) / std, per channel.
        self._scale = (1.0 / (255.0 * std)).to(self.device, dtype).view(1, c, 1, 1)
        self._shift = (-mean / std).to(self.device, dtype).view(1, c, 1, 1)
        n = len(dataset)
        global_batch = batch_size * world_size
        self._steps = n // global_batch if drop_last else math.ceil(n / global_batch)
        if self._steps == 0:
            raise DataError(
                f"{dataset.name} ({dataset.split}) has {n} images, fewer than one global batch "
                f"({batch_size} x {world_size} ranks) with drop_last=True"
            )
        if self.samples_per_epoch == 0:
            raise DataError(
                f"{dataset.name} ({dataset.split}) has {n} images, fewer than the {world_size} "
                f"ranks: rank {rank}'s shard is empty; use fewer ranks"
            )
        self._epochs_iterated = 0

    def _hold(self, dataset: Dataset) -> None:
        """Keep the images and labels on the device (a streaming pipeline reads from disk)."""
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)

    def __iter__(self):
        """One epoch: the first ``iter()`` gives epoch 0, the next epoch 1, ... (each
        reshuffled and re-augmented, as :meth:`epoch` gives them)."""
        epoch = self._epochs_iterated
        self._epochs_iterated += 1
        return self.epoch(epoch)

    # ---- sizes ----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        return self._steps

    def global_batch_sizes(self) -> list[int]:
        """Samples in each step's global batch, summed over ranks."""
        n, g = len(self.dataset), self.batch_size * self.world_size
        return [min(g, n - k * g) for k in range(self._steps)]

    def _shard(self, step: int) -> tuple[int, int]:
        """(start, size) of this rank's shard of ``step``, as positions in the epoch order."""
        g = self.batch_size * self.world_size
        start = step * g
        total = min(g, len(self.dataset) - start)
        base, extra = divmod(total, self.world_size)
        offset = start + self.rank * base + min(self.rank, extra)
        return offset, base + (1 if self.rank < extra else 0)

    @property
    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch."""
        return sum(self._shard(k)[1] for k in range(self._steps))

    # ---- the epoch ------------------------------------------------------------------------
    def _draw(self, epoch: int) -> dict[str, torch.Tensor]:
        """Order and augmentation parameters of every position of the epoch (CPU)."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
        params = {"order": torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)}
        aug = self.augment
        _, h, w = self.dataset.image_shape
        if aug.crop_padding or aug.flip:
            span = 2 * aug.crop_padding + 1
            params["dy"] = torch.randint(0, span, (n,), generator=g)
            params["dx"] = torch.randint(0, span, (n,), generator=g)
            params["flip"] = (
                torch.rand(n, generator=g) < 0.5 if aug.flip else torch.zeros(n, dtype=torch.bool)
            )
            if aug.flip and aug.alternate_flip:  # (the draw above kept: erasing's stay put)
                params["flip"] = self._alternating_flips(epoch)[params["order"]]
        if aug.erase_p > 0:
            shape = (n, _ERASE_TRIES)
            frac = torch.empty(shape, dtype=torch.float64).uniform_(*aug.erase_area, generator=g)
            area = h * w * frac
            log_r = torch.empty(shape, dtype=torch.float64).uniform_(
                math.log(aug.erase_ratio[0]), math.log(aug.erase_ratio[1]), generator=g
            )
            ratio = torch.exp(log_r)  # height / width, log-uniform as in torchvision
            eh = torch.sqrt(area * ratio).round_().long()
            ew = torch.sqrt(area / ratio).round_().long()
            fits = (eh >= 1) & (ew >= 1) & (eh < h) & (ew < w)
            first = torch.argmax(fits.int(), dim=1, keepdim=True)  # first box that fits
            eh = eh.gather(1, first).squeeze(1)
            ew = ew.gather(1, first).squeeze(1)
            u = torch.rand(n, 3, generator=g, dtype=torch.float64)
            apply = (u[:, 0] < aug.erase_p) & fits.any(dim=1)
            params["ey"] = (u[:, 1] * (h - eh + 1)).long().clamp(max=h - 1)
            params["ex"] = (u[:, 2] * (w - ew + 1)).long().clamp(max=w - 1)
            # A box of height 0 erases nothing: that is how "not this image" is encoded.
            params["eh"] = torch.where(apply, eh, torch.zeros_like(eh))
            params["ew"] = ew
        return params

    def _alternating_flips(self, epoch: int) -> torch.Tensor:
        """Per image (dataset index): mirrored in ``epoch``?  Half of the images, drawn once
        from the seed, in the even epochs; the others in the odd ones."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, "alternate_flip"))
        even = torch.rand(len(self.dataset), generator=g) < 0.5
        return even if epoch % 2 == 0 else ~even

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's ``(x, y)`` batches of ``epoch``, from step ``start`` on.

        On the first ``next()`` the rank's share of the epoch is gathered in epoch order and
        cropped/flipped in place (a uint8 copy of that share lives on the device until the
        generator is done); each batch is then a slice of it, normalised and erased.
        """
        if not isinstance(epoch, int) or epoch < 0:
            raise DataError(f"epoch {epoch!r}: expected an int >= 0")
        if not 0 <= start <= self._steps:
            raise DataError(f"start step {start}: expected 0..{self._steps}")
        return self._epoch(epoch, start)

    def _epoch(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        params = self._draw(epoch)
        shards = [self._shard(k) for k in range(self._steps)]
        pos = torch.cat([torch.arange(o, o + s) for o, s in shards])  # this rank's positions
        order = params["order"][pos]  # dataset index at each of them
        y = self.labels.index_select(0, order.to(self.device))
        if "dy" in params:
            # source: this rank's images, cropped and flipped, grouped by (flip, dy, dx);
            # take[i]: row of `source` holding the image of position i.
            source, take = self._crop_flip(
                order, params["dy"][pos], params["dx"][pos], params["flip"][pos]
            )
        else:
            source, take = self.images, order.to(self.device)
        erase = self._erase_rows_cols(params, pos) if "eh" in params else None
        bounds = [0]
        for _, size in shards:
            bounds.append(bounds[-1] + size)
        for k in range(start, self._steps):
            a, b = bounds[k], bounds[k + 1]
            x = source.index_select(0, take[a:b])  # uint8 (B, C, H, W)
            box = None if erase is None else (erase[0][a:b], erase[1][a:b])
            yield self._normalize(x, box), y[a:b]

    def _normalize(
        self, x: torch.Tensor, erase: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """uint8 (B, C, H, W) on the device -> normalised ``dtype``, erased inside the boxes
        given as rows (B, H) and columns (B, W) of 0/1 (see :meth:`_erase_rows_cols`)."""
        out = torch.mul(x, self._scale)  # uint8 * float -> float, one pass
        out.add_(self._shift)
        if erase is not None:
            inside = erase[0][:, :, None] * erase[1][:, None, :]  # uint8 (B, H, W)
            out.addcmul_(out, inside[:, None], value=-1.0)  # x - x = +0 inside the box
        return out

    def _crop_flip(
        self, order: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop H x W at offset (dy, dx) of each zero-padded image, mirrored where ``flip``.

        The images are gathered once, sorted by (flip, dy, dx): each of the at most
        (2p+1)^2 x 2 groups is then one contiguous block, shifted into a zeroed buffer with
        a single strided copy (airbench also applies its translations group by group).  So
        the epoch costs a few memory passes and a fixed number of operations, whatever its
        size.  Returns (buffer, row of the buffer for each position).
        """
        pad = self.augment.crop_padding
        span = 2 * pad + 1
        key = (flip.long() * span + dy) * span + dx  # CPU, (M,)
        by_key = torch.argsort(key, stable=True)  # slot -> position
        sizes = torch.bincount(key, minlength=2 * span * span).tolist()
        src = self.images.index_select(0, order[by_key].to(self.device))
        out = torch.zeros_like(src)
        _, _, h, w = src.shape
        first = 0
        for group, size in enumerate(sizes):
            if not size:
                continue
            mirrored, rest = divmod(group, span * span)
            sy, sx = (v - pad for v in divmod(rest, span))  # shift of the window, pixels
            # out[r, c] = img[r + sy, c + sx] where that pixel exists (else the zero padding)
            r0, r1 = max(0, -sy), min(h, h - sy)
            c0, c1 = max(0, -sx), min(w, w - sx)
            if r0 < r1 and c0 < c1:
                block = src[first : first + size, :, r0 + sy : r1 + sy, c0 + sx : c1 + sx]
                if mirrored:  # the crop read right to left lands in mirrored columns
                    c0, c1 = w - c1, w - c0
                    block = block.flip(-1)
                out[first : first + size, :, r0:r1, c0:c1] = block
            first += size
        take = torch.empty_like(by_key)
        take[by_key] = torch.arange(len(by_key))  # position -> slot
        return out, take.to(self.device)

    def _erase_rows_cols(
        self, p: dict[str, torch.Tensor], pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per position: rows (M, H) and columns (M, W) inside its erasing box, as uint8 0/1
        (CPU-built, small); a batch's mask is their outer product."""
        _, h, w = self.dataset.image_shape
        ey, eh, ex, ew = (p[k][pos] for k in ("ey", "eh", "ex", "ew"))
        ys, xs = torch.arange(h), torch.arange(w)
        in_y = (ys >= ey[:, None]) & (ys < (ey + eh)[:, None])
        in_x = (xs >= ex[:, None]) & (xs < (ex + ew)[:, None])
        in_y, in_x = in_y.to(torch.uint8), in_x.to(torch.uint8)
        return in_y.to(self.device, non_blocking=True), in_x.to(self.device, non_blocking=True)
