"""``brn``, training part: the UNet, patches with on-the-fly defects, focal loss, Adam + MultiStepLR, AUROC."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.core import ModelLoadError
from runtime.families.brn import IMAGE_TYPES, NAME, image_type, training_images
from training._dataset_check import DatasetReport
from training._family import Optimization, ReportSection, TinyConfig, TrainDefaults, TrainingFamily
from training.families.brn import legacy
from training.families.brn import options as cli
from training.families.brn.check import check_dataset
from training.families.brn.data import DefectPatchDataset
from training.families.brn.evaluate import evaluate_network, prediction_pictures
from training.families.brn.losses import BrnDistillation, BrnLoss, FocalLoss, GammaSchedule
from training.families.brn.make_dataset import make_dataset
from training.families.brn.network import DEFAULT_ARCH, build_network
from training.families.brn.options import BrnDatasetOptions, BrnOptions
from training.families.brn.report import report_sections
from training.families.brn.samples import synthetic_samples

__all__ = ["BrnTraining"]


class BrnTraining(TrainingFamily):
    """The training part of ``brn``; the variants are its image types (``strip``, ``square``, ``mvtec``)."""

    name = NAME
    options_type = BrnOptions
    dataset_options_type = BrnDatasetOptions
    # SPEC: Adam, MultiStepLR, no clipping, moving average or early stopping. A full-width
    # epoch file holds 28 M weights plus Adam's two moments (about 340 MB), hence every 10th.
    defaults = TrainDefaults(epochs=30, batch_size=16, lr=1e-3, save_every=10, keep=3, picture_every=5)
    required_checkpoint_keys = ("img_height", "img_width", "image_type")
    variant_flags = ("--image-type", "--image_type")

    # -- network ----------------------------------------------------------------------------
    def default_arch(self) -> dict[str, Any]:
        return dict(DEFAULT_ARCH)

    def arch_from_options(self, options: BrnOptions) -> dict[str, Any]:
        return {**DEFAULT_ARCH, "base_width": options.base_width}

    def build_network(self, arch: dict[str, Any]) -> nn.Module:
        return build_network(arch)

    # -- checkpoints ------------------------------------------------------------------------
    def variant_of(self, checkpoint: dict[str, Any]) -> str:
        name = checkpoint.get("image_type")
        if name not in IMAGE_TYPES:
            raise ModelLoadError(f"brn checkpoint has image_type {name!r}; expected one of {sorted(IMAGE_TYPES)}")
        geometry = IMAGE_TYPES[name]
        patch = (checkpoint.get("img_height"), checkpoint.get("img_width"))
        if patch != (geometry.patch_height, geometry.patch_width):
            raise ModelLoadError(f"brn checkpoint patch {patch[0]}x{patch[1]} does not match image type {name!r} "
                                 f"(patches of {geometry.patch_height}x{geometry.patch_width})")
        return name

    def checkpoint_fields(self, variant: str, arch: dict[str, Any]) -> dict[str, Any]:
        geometry = image_type(variant)
        return {"img_height": geometry.patch_height, "img_width": geometry.patch_width, "image_type": geometry.name}

    imported_layouts = (legacy.LAYOUT_DESCRIPTION,)

    def import_checkpoint(self, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        # The original scripts' checkpoints (DRAEM's names, no family/arch/variant keys).
        return legacy.import_draem_checkpoint(checkpoint, self)

    # -- options ----------------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        cli.add_training_arguments(parser)

    def options_from_args(self, args: argparse.Namespace) -> BrnOptions:
        return cli.options_from_args(args)

    # -- data -------------------------------------------------------------------------------
    def epoch_length(self, root: Path, variant: str, options: BrnOptions) -> int:
        return len(_selected_images(root, options))

    def train_dataset(self, root: Path, variant: str, options: BrnOptions, length: int,
                      seed: int) -> DefectPatchDataset:
        paths = _selected_images(root, options)
        return DefectPatchDataset(paths, image_type(variant), length=length, seed=seed,
                                  defects=options.defect_config(), cache_size=options.cache_size)

    def check_dataset(self, root: Path, variant: str, *, progress: bool = False) -> DatasetReport:
        return check_dataset(root, variant, progress=progress)

    # -- objective and optimisation ---------------------------------------------------------
    def make_loss(self, options: BrnOptions) -> BrnLoss:
        return BrnLoss(FocalLoss(alpha=options.alpha),
                       GammaSchedule(options.gamma_start, options.gamma_end, options.gamma_schedule))

    def distillation_loss(self, options: BrnOptions, weight: float) -> BrnDistillation:
        return BrnDistillation(self.make_loss(options), weight)

    def network_width(self, arch: dict[str, Any]) -> int:
        return int(arch["base_width"])

    def student_options(self, options: BrnOptions, width: int) -> BrnOptions:
        """The same recipe at base width ``width``."""
        return self.check_options(dataclasses.replace(options, base_width=width))

    def make_optimizer_and_scheduler(self, network: nn.Module, options: BrnOptions, *, epochs: int,
                                     lr: float) -> Optimization:
        optimizer = torch.optim.Adam(network.parameters(), lr=lr)
        milestones = sorted({max(1, int(epochs * m)) for m in options.lr_milestones})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=options.lr_factor)
        return Optimization(optimizer, scheduler)

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

    def dataset_options_from_args(self, args: argparse.Namespace) -> BrnDatasetOptions:
        return cli.dataset_options_from_args(args)

    def synthetic_dataset(self, out: Path, variant: str, seed: int, options: BrnDatasetOptions | None = None, *,
                          overwrite: bool = False, progress: bool = False) -> Path:
        options = self.check_dataset_options(options)
        return make_dataset(out, seed=seed, n_train=options.n_train, n_test_good=options.n_test_good,
                            n_test_defect=options.n_test_defect, image_type=variant, overwrite=overwrite,
                            progress=progress)

    def describe_dataset(self, options: BrnDatasetOptions) -> str:
        return options.describe()

    def synthetic_samples(self, variant: str, count: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        return synthetic_samples(variant, count, seed)

    def tiny_config(self) -> TinyConfig:
        # Base width 4 trains in seconds and still gives AUROC some meaning.
        return TinyConfig(options=BrnOptions(base_width=4),
                          dataset=BrnDatasetOptions(n_train=8, n_test_good=2, n_test_defect=3),
                          epochs=3, steps_per_epoch=6, batch_size=8)


def _selected_images(root: Path, options: BrnOptions) -> list[Path]:
    """The images of ``train/good`` that ``--img-format`` selects."""
    return options.img_format.select(training_images(root), Path(root) / "train" / "good")
