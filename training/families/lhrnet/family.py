"""``lhrnet``, training part: Lite-HRNet-18 + LiteFPN, assembly scenes, CenterNet losses, AdamW with restarts, EMA."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.core import InvalidInputError
from runtime.families.lhrnet import NAME, POINTS, VARIANT, KeypointLabel, read_split
from training._dataset_check import DatasetReport
from training._family import Optimization, ReportSection, TinyConfig, TrainDefaults, TrainingFamily
from training.families.lhrnet import options as cli
from training.families.lhrnet.check import check_dataset
from training.families.lhrnet.data import KeypointDataset
from training.families.lhrnet.evaluate import evaluate_network, prediction_pictures
from training.families.lhrnet.losses import LhrnetDistillation, LhrnetLoss, LossWeights
from training.families.lhrnet.make_dataset import make_dataset
from training.families.lhrnet.network import DEFAULT_ARCH, build_network
from training.families.lhrnet.options import LhrnetDatasetOptions, LhrnetOptions
from training.families.lhrnet.report import report_sections
from training.families.lhrnet.scenes import SceneOptions, render_scene
from training.families.lhrnet.schedule import WarmupCosineRestarts, make_scheduler

__all__ = ["LhrnetTraining"]

#: keeps the export's samples apart from the datasets' random streams
_SAMPLE_STREAM = 104729
#: the source size of :meth:`LhrnetTraining.synthetic_samples` (2.5:1, so the letterbox pads)
_SAMPLE_SIZE = (300, 750)


class LhrnetTraining(TrainingFamily):
    """The training part of ``lhrnet`` (one variant: 256x512 letterboxed input)."""

    name = NAME
    options_type = LhrnetOptions
    dataset_options_type = LhrnetDatasetOptions
    # SPEC: 160 epochs of 16 at 3e-4, clip 1.0, EMA 0.9997, bf16 and channels-last where they
    # pay (auto: on CUDA), early stopping on hit@5px with the mean error as a second guard.
    defaults = TrainDefaults(epochs=160, batch_size=16, lr=3e-4, amp="auto", channels_last=None, grad_clip=1.0,
                             ema_decay=0.9997, patience=20, min_delta=0.0, min_epochs=40, guard_metric="mae",
                             guard_min_delta=0.05, save_every=1, keep=5, picture_every=5)

    # -- network ----------------------------------------------------------------------------
    def default_arch(self) -> dict[str, Any]:
        return dict(DEFAULT_ARCH)

    def arch_from_options(self, options: LhrnetOptions) -> dict[str, Any]:
        return {**DEFAULT_ARCH, "widths": list(options.widths), "fpn_channels": options.fpn_channels,
                "head_channels": options.head_channels}

    def build_network(self, arch: dict[str, Any]) -> nn.Module:
        return build_network(arch)

    # -- checkpoints ------------------------------------------------------------------------
    def variant_of(self, checkpoint: dict[str, Any]) -> str:
        return VARIANT  # the family has one input geometry; every checkpoint also carries "variant"

    def checkpoint_fields(self, variant: str, arch: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- options ----------------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        cli.add_training_arguments(parser)

    def options_from_args(self, args: argparse.Namespace) -> LhrnetOptions:
        return cli.options_from_args(args)

    # -- data -------------------------------------------------------------------------------
    def epoch_length(self, root: Path, variant: str, options: LhrnetOptions) -> int:
        return len(read_split(root, "train"))

    def train_dataset(self, root: Path, variant: str, options: LhrnetOptions, length: int,
                      seed: int) -> KeypointDataset:
        samples = None if options.fresh_scenes else read_split(root, "train")
        return KeypointDataset(samples, self.runtime.input_spec(variant), length=length, seed=seed,
                               augment=options.augment, scenes=SceneOptions() if options.fresh_scenes else None)

    def check_dataset(self, root: Path, variant: str, *, progress: bool = False) -> DatasetReport:
        return check_dataset(root, variant, progress=progress)

    def evaluation_splits(self, root: Path) -> tuple[str, str | None]:
        return "valid", None

    # -- objective and optimisation ---------------------------------------------------------
    def make_loss(self, options: LhrnetOptions) -> LhrnetLoss:
        return LhrnetLoss(LossWeights(angle=options.angle_weight))

    def distillation_loss(self, options: LhrnetOptions, weight: float) -> LhrnetDistillation:
        return LhrnetDistillation(self.make_loss(options), weight)

    def network_width(self, arch: dict[str, Any]) -> int:
        return int(arch["widths"][0])

    def student_options(self, options: LhrnetOptions, width: int) -> LhrnetOptions:
        """The same recipe with the first branch ``width`` channels wide; the other branches, the LiteFPN and
        the heads keep their ratios to it (never below 4 channels: the shuffle blocks split channels in two)."""
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InvalidInputError(f"a width must be a positive integer, got {width!r}")
        scale = width / options.widths[0]

        def scaled(channels: int) -> int:
            return max(4, 2 * round(channels * scale / 2))

        return self.check_options(dataclasses.replace(
            options, widths=(width, *(scaled(c) for c in options.widths[1:])),
            fpn_channels=scaled(options.fpn_channels), head_channels=scaled(options.head_channels)))

    def make_optimizer_and_scheduler(self, network: nn.Module, options: LhrnetOptions, *, epochs: int,
                                     lr: float) -> Optimization:
        optimizer = torch.optim.AdamW(network.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                      weight_decay=options.weight_decay)
        schedule = WarmupCosineRestarts(base=lr, warmup=options.warmup_epochs, warmup_start=options.warmup_lr,
                                        t0=options.restart_epochs, t_mult=options.restart_mult, eta_min=options.min_lr)
        return Optimization(optimizer, make_scheduler(optimizer, schedule))

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, network: nn.Module, root: Path, split: str, variant: str) -> dict[str, float]:
        return evaluate_network(network, root, split, variant)

    def pictures(self, network: nn.Module, root: Path, split: str, variant: str,
                 count: int) -> list[tuple[str, np.ndarray]]:
        return prediction_pictures(network, root, split, variant, count)

    def report_sections(self, network: nn.Module, root: Path, split: str, variant: str,
                        out_dir: Path) -> list[ReportSection]:
        return report_sections(network, root, split, variant, out_dir)

    # -- synthetic data ---------------------------------------------------------------------
    def add_dataset_arguments(self, parser: argparse.ArgumentParser) -> None:
        cli.add_dataset_arguments(parser)

    def dataset_options_from_args(self, args: argparse.Namespace) -> LhrnetDatasetOptions:
        return cli.dataset_options_from_args(args)

    def synthetic_dataset(self, out: Path, variant: str, seed: int, options: LhrnetDatasetOptions | None = None, *,
                          overwrite: bool = False, progress: bool = False) -> Path:
        options = self.check_dataset_options(options)
        scenes = SceneOptions() if options.heights is None else SceneOptions(heights=tuple(options.heights))
        return make_dataset(out, seed=seed, n_images=options.n_images, options=scenes, overwrite=overwrite,
                            progress=progress)

    def describe_dataset(self, options: LhrnetDatasetOptions) -> str:
        return options.describe()

    def synthetic_samples(self, variant: str, count: int, seed: int) -> tuple[np.ndarray, list[KeypointLabel]]:
        options = SceneOptions(size=_SAMPLE_SIZE)
        images, labels = [], []
        for i in range(count):
            scene = render_scene(np.random.default_rng([seed, _SAMPLE_STREAM, i]), options)
            images.append(np.moveaxis(scene.image, -1, 0).astype(np.float32))
            label = scene.label()
            labels.append(KeypointLabel(np.array([label[name] for name in POINTS], np.float64), float(label["angle"]),
                                        int(label["symmetry"]), tuple(label["kinds"]), label["width"],
                                        label["height"]))
        return np.stack(images), labels

    def tiny_config(self) -> TinyConfig:
        # Narrow branches and small scenes train in seconds; no moving average (0.9997 would keep
        # the weights at their start over a few steps) and full precision on the CPU.
        return TinyConfig(options=LhrnetOptions(widths=(8, 16, 32, 64), fpn_channels=16, head_channels=16,
                                                warmup_epochs=1),
                          dataset=LhrnetDatasetOptions(n_images=12, heights=(120, 160)),
                          epochs=3, steps_per_epoch=6, batch_size=4, variant=VARIANT,
                          settings={"ema_decay": 0.0, "amp": "off", "lr": 2e-3})
