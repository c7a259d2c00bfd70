"""Data loaders whose order is a pure function of (seed, epoch): a resumed run sees exactly
the batches it would have seen, on any number of workers, and DDP ranks see disjoint shards."""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from .. import distributed
from ..errors import AudiotoolsError, ConfigError

logger = logging.getLogger(__name__)


class EpochSampler(Sampler[int]):
    """Indices for one rank: shuffled by a generator seeded with (seed, epoch) when `shuffle`,
    then split across ranks. Every rank gets the same count (the tail is dropped when training,
    padded by wrapping for evaluation) so collective ops stay in step."""

    def __init__(self, length: int, seed: int, shuffle: bool, drop_tail: bool):
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.drop_tail = drop_tail
        self.epoch = 0
        self.rank = distributed.rank()
        self.world = distributed.world_size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _per_rank(self) -> int:
        if self.drop_tail:
            return self.length // self.world
        return -(-self.length // self.world)

    def __len__(self) -> int:
        return self._per_rank()

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        count = self._per_rank()
        order = (order * 2)[:count * self.world] if self.world > 1 else order[:count]
        return iter(order[self.rank::self.world])


def _worker_message(error: AudiotoolsError) -> str:
    """An error's own message: a DataLoader worker's reaches the main process as "Caught
    ConfigError in DataLoader worker process 0. Original Traceback ..." and its frames."""
    text = str(error)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    marker = f"{type(error).__name__}: "
    start = text.rfind(marker)
    return text[start + len(marker):].strip() if start >= 0 else text


def _seed_worker(worker_id: int) -> None:
    """Workers draw from numpy/random seeded by torch's per-worker seed (itself derived from
    the loader's seeded generator), so augmentation is reproducible too."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# Worker counts already warned about in this process (one warning, not one per split).
_WARNED_WORKERS: set[int] = set()


def _warn_if_oversubscribed(num_workers: int) -> None:
    """More DataLoader workers than this process's share of the CPUs only adds processes that
    compete with training for the same cores (stable-audio-tools' default is 6)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    cpus = max(1, len(os.sched_getaffinity(0)) // local)
    if num_workers > cpus and num_workers not in _WARNED_WORKERS:
        _WARNED_WORKERS.add(num_workers)
        logger.warning("dataset.num_workers=%d DataLoader workers on %d CPU(s) for this process: "
                       "they compete with training for the cores; set dataset.num_workers=%d or "
                       "less (it is not part of the XP signature).", num_workers, cpus, cpus)


class EpochLoader:
    """A DataLoader re-seeded for each epoch. `set_epoch` must be called before iterating;
    it also reaches the dataset when it has `set_epoch` (segment datasets draw per epoch)."""

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int,
                 seed: int, collate_fn: Callable[[list[Any]], Any] | None = None,
                 drop_last: bool | None = None, pin_memory: bool = False):
        world = distributed.world_size()
        if batch_size % world:
            lower, upper = batch_size // world * world, -(-batch_size // world) * world
            raise ConfigError(
                f"dataset.batch_size={batch_size} is the global batch, split over {world} "
                f"processes, so it must be divisible by {world}: use "
                f"{' or '.join(str(b) for b in (lower, upper) if b > 0)}.")
        drop_last = shuffle if drop_last is None else drop_last
        _warn_if_oversubscribed(num_workers)
        self.dataset = dataset
        self.seed = seed
        # A streaming dataset (WebDataset shards) orders and splits itself per (seed, epoch).
        self.sampler = None if isinstance(dataset, IterableDataset) else EpochSampler(
            len(dataset), seed, shuffle, drop_tail=drop_last)
        self.generator = torch.Generator()
        self.loader = DataLoader(
            dataset, batch_size=batch_size // world, sampler=self.sampler,
            num_workers=num_workers, collate_fn=collate_fn, drop_last=drop_last,
            worker_init_fn=_seed_worker, generator=self.generator, pin_memory=pin_memory,
            persistent_workers=False)
        if self.sampler is not None and len(self.loader) == 0:
            raise ConfigError(
                f"dataset.batch_size={batch_size} is larger than the {len(dataset)} items of "
                "this split (per process, with drop_last); lower it or add data.")

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def padding_rows(self, batch_index: int, rows: int | torch.Tensor) -> torch.Tensor:
        """Which items of this rank's batch `batch_index` are padding: under DDP an
        evaluation split that does not divide by the ranks is padded by wrapping around, and
        a metric exact over the split leaves those copies out. `rows`: the batch's size, or
        where each of its items was in the batch asked for (a batch that dropped unreadable
        items: `collate_segments`' "rows")."""
        rows = torch.arange(rows) if isinstance(rows, int) else rows
        if self.sampler is None or self.sampler.drop_tail:
            return torch.zeros(len(rows), dtype=torch.bool)
        positions = batch_index * self.loader.batch_size + rows
        return self.sampler.rank + self.sampler.world * positions >= self.sampler.length

    def whole_pass(self, batch_size: int) -> Iterator[Any]:
        """The split's batches of `batch_size` as one process reads them, whatever the number
        of ranks (iterating the loader gives this rank's share), at epoch 0; a stream of
        shards splits itself: this rank's stream, as the loader reads it."""
        self.set_epoch(0)
        if isinstance(self.dataset, IterableDataset):
            yield from self
            return
        collate = self.loader.collate_fn
        for start in range(0, len(self.dataset), batch_size):
            stop = min(start + batch_size, len(self.dataset))
            yield collate([self.dataset[index] for index in range(start, stop)])

    def batches(self) -> int | None:
        """Batches of one pass; None for a stream that is only counted by reading it (a
        fixed pass over shards without num_samples)."""
        try:
            return len(self.loader)
        except TypeError:
            return None

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except AudiotoolsError as error:  # from a DataLoader worker: the user's words
                raise type(error)(_worker_message(error)) from None
            yield batch
