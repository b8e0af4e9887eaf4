"""Datasets (npy, image-folder, synthetic), the W-invariant data order, and a prefetching batch loader.

Every dataset gives `len(ds)` and `ds.get_batch(indices) -> (uint8 NHWC tensor, int64 labels)`. Images stay
uint8 until the device: augmentation and normalisation happen there (augment.py).

Data order (docs/internals.md "Data order"): epoch e uses permutation(N, seed=(seed, e)); global step k
takes perm[j*B:(j+1)*B] with j = k % stepsPerEpoch; rank r takes positions [r*B/W, (r+1)*B/W).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .layout import CONVERT_HINT, DataError, image_folder_classes, npy_split_size

log = logging.getLogger(__name__)
SPLITS = {"train": "train", "eval": "test"}  # split name -> npy file prefix
__all__ = ["DataError", "open_dataset", "epoch_permutation", "global_batch_indices", "rank_slice", "BatchLoader"]


class NpyDataset:
    """`<prefix>_images.npy` (uint8 N,H,W,3) and `<prefix>_labels.npy`, memory-mapped."""

    def __init__(self, folder: str, split: str = "train"):
        prefix = SPLITS[split]
        field = "spec.data.path" if split == "train" else "spec.data.evalPath"
        n = npy_split_size(folder, prefix, field)
        self.images_file = os.path.join(folder, f"{prefix}_images.npy")
        self.images = np.load(self.images_file, mmap_mode="r")
        self.labels = np.asarray(np.load(os.path.join(folder, f"{prefix}_labels.npy")), dtype=np.int64)
        self.num_classes = int(self.labels.max()) + 1 if n else 0
        self.image_size = int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        # Fancy indexing a memmap reads only the rows asked for; sorted reads are friendlier to the disk.
        order = np.argsort(idx, kind="stable")
        rows = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
        rows[order] = self.images[idx[order]]
        return torch.from_numpy(rows), torch.from_numpy(self.labels[idx])


def load_image(path: str, size: int) -> np.ndarray:
    """Decode one image to uint8 (size, size, 3): resize the shorter side to size, centre crop."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError([("", f"{path}: cannot decode image ({e})")]) from e


class ImageFolderDataset(torch.utils.data.Dataset):
    """Class subfolders of JPEG/PNG files; sorted class names give labels 0..C-1."""

    def __init__(self, folder: str, image_size: int, split: str = "train"):
        field = "spec.data.path" if split == "train" else "spec.data.evalPath"
        classes = image_folder_classes(folder, field)
        self.classes = [name for name, _ in classes]
        self.files = [f for _, files in classes for f in files]
        self.labels = np.array([c for c, (_, files) in enumerate(classes) for _ in files], dtype=np.int64)
        self.num_classes = len(self.classes)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return load_image(self.files[i], self.image_size), int(self.labels[i])

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        imgs = np.stack([load_image(self.files[i], self.image_size) for i in indices])
        return torch.from_numpy(imgs), torch.from_numpy(self.labels[np.asarray(indices, dtype=np.int64)])


class SyntheticDataset:
    """Deterministic random images with class structure: a per-class coarse colour pattern plus noise.

    The pattern is shared by both splits and the noise differs, so a kNN on pixels is well above chance.
    """

    def __init__(self, num_samples: int, num_classes: int, image_size: int, split: str = "train", seed: int = 0):
        self.split_id = 0 if split == "train" else 1
        self.n = num_samples if split == "train" else max(2 * num_classes, num_samples // 4)
        self.num_classes, self.image_size, self.seed = num_classes, image_size, seed
        self.labels = np.random.default_rng((seed, self.split_id, 1)).integers(0, num_classes, self.n)
        cells = 4  # the pattern is a 4x4 colour grid, upsampled
        protos = np.random.default_rng((seed, 2)).uniform(0, 255, (num_classes, cells, cells, 3))
        rep = -(-image_size // cells)
        self.protos = np.repeat(np.repeat(protos, rep, 1), rep, 2)[:, :image_size, :image_size]

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        out = np.empty((len(indices), self.image_size, self.image_size, 3), dtype=np.uint8)
        for row, i in enumerate(indices):
            rng = np.random.default_rng((self.seed, self.split_id, 3, int(i)))
            noise = rng.normal(0, 40, (self.image_size, self.image_size, 3))
            out[row] = np.clip(0.7 * self.protos[self.labels[i]] + 0.3 * 128 + noise, 0, 255)
        return torch.from_numpy(out), torch.from_numpy(self.labels[np.asarray(indices, dtype=np.int64)])


def open_dataset(data_cfg: dict, split: str = "train"):
    """Open the resolved spec's `spec.data` for split 'train' or 'eval'. Resolved: the defaults (and evalPath
    from path) are in contract/presets.json, so nothing here adds a second one."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
    fmt = data_cfg["format"]
    folder = data_cfg.get("path" if split == "train" else "evalPath")  # absent for synthetic data
    if fmt == "synthetic":
        ds = SyntheticDataset(int(data_cfg["numSamples"]), int(data_cfg["numClasses"]), int(data_cfg["imageSize"]),
                              split)
    elif not folder:
        raise DataError([("spec.data.path", f"required for format '{fmt}'; {CONVERT_HINT}")])
    elif fmt == "npy":
        ds = NpyDataset(folder, split)
    elif fmt == "image-folder":
        ds = ImageFolderDataset(folder, int(data_cfg["imageSize"]), split)
    else:
        raise DataError([("spec.data.format", f"unknown format {fmt!r}")])
    log.info("data: %s %s split, %d images, %d classes%s", fmt, split, len(ds), ds.num_classes,
             f" from {folder}" if fmt != "synthetic" else "")
    return ds


# ---------------------------------------------------------------- data order

@lru_cache(maxsize=2)
def _perm(n: int, seed: int, epoch: int) -> np.ndarray:
    p = np.random.default_rng((seed, epoch)).permutation(n)
    p.flags.writeable = False
    return p


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: numpy default_rng((seed, epoch)).permutation(n)."""
    return _perm(int(n), int(seed), int(epoch))


def global_batch_indices(n: int, global_batch: int, seed: int, step: int, steps_per_epoch: int) -> np.ndarray:
    """The B sample indices of global optimizer step `step` (drop-last epochs)."""
    epoch, j = divmod(int(step), int(steps_per_epoch))
    return epoch_permutation(n, seed, epoch)[j * global_batch:(j + 1) * global_batch]


def rank_slice(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous share [r*B/W, (r+1)*B/W) of a global batch."""
    if len(indices) % world_size:
        raise ValueError(f"a global batch of {len(indices)} does not split over {world_size} ranks")
    per = len(indices) // world_size
    return indices[rank * per:(rank + 1) * per]


# ---------------------------------------------------------------- batch loader

class _StepSampler(torch.utils.data.Sampler):
    """Yields this rank's index list per step, for a DataLoader's batch_sampler."""

    def __init__(self, loader: "BatchLoader"):
        self.loader = loader

    def __iter__(self):
        return (self.loader.indices(k).tolist() for k in range(self.loader.start_step, self.loader.end_step))

    def __len__(self) -> int:
        return self.loader.end_step - self.loader.start_step


def _collate(items):
    imgs, labels = zip(*items)
    return torch.from_numpy(np.stack(imgs)), torch.tensor(labels, dtype=torch.int64)


class BatchLoader:
    """Yields (step, uint8 NHWC images, labels) of this rank for steps start_step..end_step-1.

    The rank's share is b*a samples (all its micro-batches of the step). A background thread prefetches
    for npy/synthetic; image-folder decodes in `loader_workers` DataLoader processes. Pinned on CUDA.
    """

    def __init__(self, dataset, global_batch: int, steps_per_epoch: int, seed: int, rank: int, world_size: int,
                 start_step: int, end_step: int, pin_memory: bool = False, prefetch: int = 2,
                 loader_workers: int = 0):
        if global_batch % world_size:
            raise ValueError(f"globalBatch {global_batch} does not split over {world_size} ranks")
        self.ds, self.n = dataset, len(dataset)
        self.B, self.spe, self.seed = global_batch, steps_per_epoch, seed
        self.rank, self.world = rank, world_size
        self.start_step, self.end_step = start_step, end_step
        self.pin, self.prefetch, self.workers = pin_memory, max(1, prefetch), loader_workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def indices(self, step: int) -> np.ndarray:
        return rank_slice(global_batch_indices(self.n, self.B, self.seed, step, self.spe), self.rank, self.world)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        if isinstance(self.ds, ImageFolderDataset):
            return self._iter_dataloader()
        return self._iter_thread()

    def _iter_dataloader(self):
        dl = torch.utils.data.DataLoader(
            self.ds, batch_sampler=_StepSampler(self), num_workers=self.workers, collate_fn=_collate,
            pin_memory=self.pin, prefetch_factor=self.prefetch if self.workers else None,
            persistent_workers=False)
        it = iter(dl)
        try:
            for k, (x, y) in enumerate(it, start=self.start_step):
                yield k, x, y
        finally:
            # Stop the workers now, also on an error or an early stop; left to the garbage collector
            # (a traceback keeps the iterator alive) the shutdown can stall for torch's 5 s join timeout.
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def _iter_thread(self):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)

        def work():
            try:
                for k in range(self.start_step, self.end_step):
                    if self._stop.is_set():
                        return
                    x, y = self.ds.get_batch(self.indices(k))
                    if self.pin:
                        x, y = x.pin_memory(), y.pin_memory()
                    while not self._stop.is_set():
                        try:
                            q.put((k, x, y), timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as e:  # surfaced in the consumer, with its cause
                q.put(e)
                return
            q.put(None)

        self._stop.clear()
        self._thread = threading.Thread(target=work, name="byol-prefetch", daemon=True)
        self._thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the prefetch thread (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
