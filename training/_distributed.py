"""Several training processes under ``torchrun``: who is who, the process group, and what they share.

``torchrun --nproc-per-node N -m training.train ...`` starts N processes and
tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; a plain start is one
process of rank 0. Rank 0 logs, evaluates and writes; every rank trains on its
share of each batch, and DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from runtime.core import InvalidInputError

__all__ = ["Ranks", "broadcast", "mean_over_ranks", "process_group"]

#: evaluation runs on rank 0 while the others wait; a full-size evaluation can take minutes
_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process logs, evaluates and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_environment(cls) -> Ranks:
        """The ranks ``torchrun`` set in the environment (one process without them).

        Raises:
            InvalidInputError: values that are not integers or do not fit together.
        """
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
        try:
            rank, world, local = (int(os.environ.get(name, default)) for name, default in zip(names, ("0", "1", "0")))
        except ValueError:
            raise InvalidInputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them), got "
                                    + ", ".join(f"{n}={os.environ.get(n)!r}" for n in names)) from None
        if not (world >= 1 and 0 <= rank < world and local >= 0):
            raise InvalidInputError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} "
                                    f"LOCAL_RANK={local}")
        return cls(rank, world, local)


class process_group:
    """Context manager: the process group of a distributed run (nothing for one process).

    NCCL between GPUs, gloo on the CPU; destroyed on exit, also after an error.
    """

    def __init__(self, ranks: Ranks, device: torch.device) -> None:
        self.ranks = ranks
        self.device = device
        self.owned = False

    def __enter__(self) -> process_group:
        if self.ranks.distributed and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", timeout=_TIMEOUT)
            self.owned = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of ``value`` over every process (``value`` itself for one process)."""
    if not _active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any process (all of them get the same answer)."""
    if not _active():
        return flag
    tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object), on every process."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier()
