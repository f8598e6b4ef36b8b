"""What each training step draws from the data: a class-balanced subset, a batch order, augmentation.

Why it is built this way:

* **Augmentation is batched tensor ops on the device** (no DataLoader workers, no PIL, no per-sample
  Python loop): a 2-core CPU and a GPU run are equally served, and every random
  draw comes from one seeded ``torch.Generator``, so runs are reproducible.
* **Batch order is a pure function of (seed, epoch, position)**, so a resumed run draws exactly the
  indices the uninterrupted run would have drawn.
* **Subsets are stratified**: ``data.fraction`` keeps the classes balanced, as the paper's reduced
  training sets (Table 1, Fig 6a) did.
"""

from __future__ import annotations

import math

import torch

from .data import AUGMENT_PROTOCOLS, IMAGE_SHAPE

__all__ = ["stratified_indices", "Augment", "BatchOrder"]


# ------------------------------------------------------------------------------------------------
# Subsets


def stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted int64 indices of a class-balanced random subset (``data.fraction`` of the training set).

    Each class present gets ``k = max(1, floor(fraction * N / num_classes))`` samples (capped at the
    smallest class), drawn with ``torch.Generator().manual_seed(seed)``. ``fraction == 1`` returns all
    indices. With balanced CIFAR-10, fraction 0.8 gives the paper's 40k training set (4,000 per class).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (0 < fraction <= 1):
        raise ValueError(f"data.fraction must be in (0, 1], got {fraction!r}")
    labels = labels.detach().to("cpu", torch.int64).reshape(-1)
    n = labels.numel()
    if fraction == 1:
        return torch.arange(n, dtype=torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    k = max(1, math.floor(fraction * n / len(classes) + 1e-9))
    k = min(k, int(counts.min()))
    g = torch.Generator().manual_seed(int(seed))
    picked = []
    for c in classes.tolist():
        idx = torch.nonzero(labels == c, as_tuple=False).reshape(-1)
        picked.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    return torch.sort(torch.cat(picked)).values


# ------------------------------------------------------------------------------------------------
# Augmentation


def _image_stats(x: torch.Tensor, chunk: int = 8192):
    """Exact per-pixel sum [3,32,32] and per-channel sum of squares [3] of uint8 images, as float64.

    float32 chunk sums are exact here (a chunk sums at most 8192 * 255 < 2**24), and the per-channel
    squares come from a 256-bin histogram, so no full float copy of the data set is ever made.
    """
    flat = x.reshape(x.shape[0], -1)
    pix = torch.zeros(flat.shape[1], dtype=torch.float64, device=x.device)
    for i in range(0, flat.shape[0], chunk):
        pix += flat[i : i + chunk].to(torch.float32).sum(0).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64, device=x.device)
    hist = [torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64) for c in range(3)]
    sq = torch.stack([(h * values * values).sum() for h in hist])
    return pix.view(x.shape[1:]), sq


class Augment:
    """Batched, seeded training augmentation + normalization of uint8 [B,3,32,32] images.

    ``"paper"``: the Caffe ``transform_param { mirror: true  mean_file: ... }`` protocol of the
    paper's runs (its ``crop_size: 32`` on 32x32 images crops nothing): per-pixel mean-image
    subtraction, then a random horizontal mirror (p=0.5 per sample); no crop, no std division.
    As in Caffe's DataTransformer, the mean image is subtracted at the *source* pixel and the result
    is mirrored, i.e. a mirrored sample is ``flip(x - mean)`` (not ``flip(x) - mean``). Pixels are
    scaled to 0..1 (Caffe used 0..255 with no scale); because the first conv is followed by BN this
    is an exact reparametrization of the first layer, not a change of the training dynamics.
    ``self.mean`` is float32 [3,32,32] (mean training image / 255); ``self.std`` is None.

    ``"standard"``: the common PyTorch recipe: 4-pixel zero pad (black, in pixel space), random
    32x32 crop with per-sample offsets, random horizontal flip, then per-channel
    ``(x/255 - mean) / std`` with mean/std float32 [3,1,1] over all training pixels.

    All randomness comes from the ``generator`` passed to :meth:`train` (on the data's device), so
    a seed reproduces the augmentation. :meth:`eval` applies the normalization only.
    """

    def __init__(self, protocol: str, train_x: torch.Tensor):
        if protocol not in AUGMENT_PROTOCOLS:
            raise ValueError(f"data.augment must be one of {', '.join(AUGMENT_PROTOCOLS)}, got {protocol!r}")
        _check_images(train_x, "train_x")
        if train_x.shape[0] == 0:
            raise ValueError("Augment needs at least one training image")
        self.protocol = protocol
        n = train_x.shape[0]
        pix, sq = _image_stats(train_x)
        if protocol == "paper":
            self.mean = (pix / (n * 255.0)).to(torch.float32)
            self.std = None
        else:
            count = n * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
            mean = pix.sum((1, 2)) / count
            var = (sq / count - mean * mean).clamp_min(0)
            self.mean = (mean / 255.0).to(torch.float32).view(3, 1, 1)
            self.std = (var.sqrt() / 255.0).clamp_min(1e-6).to(torch.float32).view(3, 1, 1)
        self._offsets = torch.arange(32, device=train_x.device)

    def _stats_on(self, device):
        if self.mean.device != device:
            self.mean = self.mean.to(device)
            if self.std is not None:
                self.std = self.std.to(device)
            self._offsets = self._offsets.to(device)

    def _normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        y = x_uint8.to(torch.float32).div_(255.0).sub_(self.mean)
        if self.std is not None:
            y.div_(self.std)
        return y

    def eval(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Normalization only (test time); float32 contiguous [B,3,32,32]."""
        _check_images(x_uint8, "x")
        self._stats_on(x_uint8.device)
        return self._normalize(x_uint8).contiguous()

    def train(self, x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random augmentation + normalization; float32 contiguous [B,3,32,32]."""
        _check_images(x_uint8, "x")
        if generator.device.type != x_uint8.device.type:
            raise ValueError(
                f"the augmentation generator is on {generator.device} but the images are on "
                f"{x_uint8.device}; create it with torch.Generator(device=<data device>)"
            )
        self._stats_on(x_uint8.device)
        dev = x_uint8.device
        b = x_uint8.shape[0]
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        if self.protocol == "paper":
            y = self._normalize(x_uint8)
            return torch.where(flip.view(b, 1, 1, 1), y.flip(3), y).contiguous()

        off = torch.randint(0, 9, (b, 2), generator=generator, device=dev)
        padded = x_uint8.new_zeros((b, 3, 40, 40))
        padded[:, :, 4:36, 4:36] = x_uint8
        ar = self._offsets
        rows = off[:, 0:1] + ar  # [b,32]
        cols = off[:, 1:2] + torch.where(flip.view(b, 1), 31 - ar, ar)  # flip folded into the gather
        crop = padded[
            torch.arange(b, device=dev).view(b, 1, 1, 1),
            torch.arange(3, device=dev).view(1, 3, 1, 1),
            rows.view(b, 1, 32, 1),
            cols.view(b, 1, 1, 32),
        ]
        return self._normalize(crop).contiguous()


def _check_images(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        desc = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be uint8 [B,3,32,32], got {desc}")


# ------------------------------------------------------------------------------------------------
# Batch order


class BatchOrder:
    """Shuffled batches over ``n`` samples, reproducible and resumable.

    Epoch ``e`` is ``torch.randperm(n)`` from a CPU generator seeded with ``seed * 1_000_003 + e``.
    Batches are consecutive slices of the concatenated epoch permutations: a batch that crosses an
    epoch end takes the rest of this epoch and the start of the next, so no sample is dropped and
    every index appears once per epoch. The state is ``{seed, n, batch_size, epoch_index, position}``.
    """

    _SEED_MULT = 1_000_003

    def __init__(self, n: int, batch_size: int, seed: int):
        n, batch_size = int(n), int(batch_size)
        if n < 1:
            raise ValueError(f"BatchOrder needs at least one sample, got n={n}")
        if not 1 <= batch_size <= n:
            raise ValueError(f"train.batch_size must be in 1..{n} (the training set size), got {batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.seed = int(seed)
        self.epoch_index = 0
        self.position = 0
        self._cache: tuple[int, torch.Tensor] | None = None

    def _perm(self, e: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != e:
            g = torch.Generator().manual_seed((self.seed * self._SEED_MULT + e) % (1 << 63))
            self._cache = (e, torch.randperm(self.n, generator=g))
        return self._cache[1]

    def next_indices(self) -> torch.Tensor:
        """int64 CPU indices of the next batch (a fresh tensor)."""
        pieces, need = [], self.batch_size
        while need:
            take = min(need, self.n - self.position)
            pieces.append(self._perm(self.epoch_index)[self.position : self.position + take])
            self.position += take
            need -= take
            if self.position == self.n:
                self.epoch_index += 1
                self.position = 0
        return pieces[0].clone() if len(pieces) == 1 else torch.cat(pieces)

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "n": self.n,
            "batch_size": self.batch_size,
            "epoch_index": self.epoch_index,
            "position": self.position,
        }

    def load_state_dict(self, d: dict) -> None:
        """Resume. ``n`` and ``seed`` must match this order's; the batch size stays this object's
        (resuming with the same one reproduces the uninterrupted run exactly)."""
        missing = [k for k in ("seed", "n", "epoch_index", "position") if k not in d]
        if missing:
            raise ValueError(f"BatchOrder state lacks {', '.join(missing)}")
        if int(d["n"]) != self.n:
            raise ValueError(
                f"BatchOrder state is for {d['n']} training samples but this run has {self.n} "
                "(data.fraction or the dataset changed); cannot resume the same order"
            )
        if int(d["seed"]) != self.seed:
            raise ValueError(f"BatchOrder state has seed {d['seed']} but this run uses {self.seed}; cannot resume")
        epoch_index, position = int(d["epoch_index"]), int(d["position"])
        if epoch_index < 0 or not 0 <= position < self.n:
            raise ValueError(f"BatchOrder state has invalid epoch_index/position {epoch_index}/{position}")
        self.epoch_index, self.position = epoch_index, position
