"""Batches of a run: which samples each process takes at each step, from any step of any epoch.

A family's training dataset yields sample ``i`` of epoch ``e`` as a pure
function of ``(seed, e, i)``. Step ``s`` of an epoch is made of samples
``s * B .. (s + 1) * B - 1`` (``B`` the batch size); with ``P`` processes and
``A`` accumulated micro-batches, process ``r`` takes its contiguous ``B / P``
of them in ``A`` micro-batches. So a run sees the same batches whatever the
number of processes or micro-batches, and resuming at any step repeats and
skips nothing. ``torch.utils.data.DistributedSampler`` deals samples out
round-robin and always from an epoch's start, hence this sampler.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training._distributed import Ranks

__all__ = ["EpochIndexed", "StepSampler", "make_loader"]


class EpochIndexed(Dataset):
    """The family's dataset indexed by ``(epoch, index)``.

    Worker processes hold their own copy of the dataset, so the epoch travels
    with every index rather than through ``set_epoch`` in the main process.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class StepSampler(Sampler):
    """This process's ``(epoch, index)`` keys for the steps ``first_step..steps - 1`` of ``epoch``."""

    def __init__(self, steps: int, batch_size: int, ranks: Ranks) -> None:
        self.steps = steps
        self.batch_size = batch_size
        self.share = batch_size // ranks.world
        self.rank = ranks.rank
        self.epoch = 0
        self.first_step = 0

    def start(self, epoch: int, first_step: int) -> None:
        """The next iteration covers ``epoch`` from ``first_step`` on."""
        self.epoch, self.first_step = epoch, first_step

    def __len__(self) -> int:
        return (self.steps - self.first_step) * self.share

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for step in range(self.first_step, self.steps):
            start = step * self.batch_size + self.rank * self.share
            for index in range(start, start + self.share):
                yield self.epoch, index


def make_loader(dataset: Dataset, sampler: StepSampler, micro_batch: int, *, workers: int, pin_memory: bool,
                prefetch: int, seed: int) -> DataLoader:
    """A loader of ``micro_batch``-sized batches in the sampler's order.

    Its own generator keeps the global torch RNG untouched (a DataLoader
    draws a seed from it at every new iteration otherwise), so a resumed run
    draws the same random numbers as one that ran straight through.
    """
    extra = {"persistent_workers": True, "prefetch_factor": prefetch} if workers > 0 else {}
    return DataLoader(EpochIndexed(dataset), batch_size=micro_batch, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed), **extra)
