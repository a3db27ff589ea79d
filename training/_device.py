"""Where a run trains: the device, mixed precision with its gradient scaler, memory format, data loading."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from runtime.core import InvalidInputError
from training._config import Amp, TrainConfig
from training._distributed import Ranks

__all__ = ["Placement", "place"]


@dataclass
class Placement:
    """The resolved hardware settings of one training process.

    Attributes:
        device: where the network and batches live.
        amp: the mixed precision in effect (never ``auto``).
        channels_last: whether the network and 4-D batches use the channels-last format.
        workers: DataLoader worker processes.
        pin_memory: whether batches are page-locked (CUDA only).
        scaler: the fp16 gradient scaler (None otherwise).
    """

    device: torch.device
    amp: Amp
    channels_last: bool
    workers: int
    pin_memory: bool
    scaler: Any = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Amp.BF16: torch.bfloat16, Amp.FP16: torch.float16}.get(self.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass and loss run under this (a no-op without mixed precision)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def prepare_network(self, network: nn.Module) -> nn.Module:
        network = network.to(self.device)
        return network.to(memory_format=torch.channels_last) if self.channels_last else network

    def to_device(self, batch: Any) -> Any:
        """A batch (tensors, or tuples, lists and dicts of them) on the device, in the memory format."""
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=self.pin_memory)
            if self.channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            return batch
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        return batch

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter], clip: float) -> float:
        """Unscale, clip to ``clip`` (0: no clipping) and apply the gradients; returns their global norm.

        With fp16 the scaler skips a step whose gradients overflowed (the norm is then inf).
        """
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        norm = nn.utils.clip_grad_norm_(parameters, clip if clip > 0 else math.inf)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return float(norm)

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def place(config: TrainConfig, ranks: Ranks) -> Placement:
    """The device, precision and loader settings of ``config`` on this machine (nothing is allocated).

    Raises:
        InvalidInputError: an unknown device, CUDA asked for without a GPU, a GPU index out of
            range, fp16 without CUDA, bf16 on a GPU without it, or a batch that cannot be split
            over the processes and micro-batches.
    """
    device = _device(str(config.device), ranks)
    amp = _amp(config.amp, device)
    parts = ranks.world * config.accumulate
    if config.batch_size < ranks.world:
        raise InvalidInputError(f"--batch-size {config.batch_size} is smaller than the {ranks.world} processes; "
                                f"expected at least one sample per process")
    if config.batch_size % parts:
        raise InvalidInputError(f"--batch-size {config.batch_size} must split evenly over {ranks.world} "
                                f"process(es) x --accumulate {config.accumulate}; expected a multiple of {parts}")
    workers = _default_workers(ranks) if config.workers is None else config.workers
    pin = device.type == "cuda" if config.pin_memory is None else bool(config.pin_memory and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if amp is Amp.FP16 else None
    # None: channels-last where it pays, on CUDA; on CPUs it slowed BatchNorm in training several-fold.
    channels_last = device.type == "cuda" if config.channels_last is None else bool(config.channels_last)
    return Placement(device, amp, channels_last, workers, pin, scaler)


def _device(name: str, ranks: Ranks) -> torch.device:
    available = torch.cuda.is_available()
    if name == "auto":
        name = "cuda" if available else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not available:
        raise InvalidInputError(f"--device {name}: no CUDA device is available (torch {torch.__version__}, "
                                f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu or auto")
    count = torch.cuda.device_count()
    if name == "cuda":
        index = ranks.local_rank if ranks.distributed else torch.cuda.current_device()
    elif ranks.distributed:
        raise InvalidInputError(f"--device {name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                                f"use --device cuda (or CUDA_VISIBLE_DEVICES to choose GPUs)")
    else:
        index = int(name.split(":")[1])
    if index >= count:
        raise InvalidInputError(f"--device {name}: GPU {index} does not exist; this machine has {count}")
    return torch.device("cuda", index)


def _amp(amp: Amp, device: torch.device) -> Amp:
    bf16_ok = device.type == "cpu" or torch.cuda.is_bf16_supported()
    if amp is Amp.AUTO:
        return Amp.BF16 if device.type == "cuda" and bf16_ok else Amp.OFF
    if amp is Amp.FP16 and device.type != "cuda":
        raise InvalidInputError("--amp fp16 needs a CUDA device (its gradient scaler is CUDA only); "
                                "use --amp bf16 or off on the CPU")
    if amp is Amp.BF16 and not bf16_ok:
        raise InvalidInputError(f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                                f"use --amp fp16 or off")
    return amp


def _default_workers(ranks: Ranks) -> int:
    """One core per process for the training loop, the rest (at most 4) prepare batches."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(4, cores // ranks.world - 1))

