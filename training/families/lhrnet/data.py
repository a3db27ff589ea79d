"""lhrnet training samples: an image (from the dataset, or a fresh synthetic scene), augmented, letterboxed.

Sample ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``. The image
goes through the runtime's own pre-processing (``runtime.core.to_tensor``:
letterbox into 256x512, padding 255, validity mask, scale), so training sees
exactly what a deployed graph sees; the labels go through the same letterbox
transform into input pixels, then become stride-4 targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core import InvalidInputError, Preprocess, read_image, to_tensor
from runtime.families.lhrnet import POINTS, KeypointLabel
from training.families.lhrnet.augment import AugmentOptions, augment
from training.families.lhrnet.scenes import SceneOptions, render_scene
from training.families.lhrnet.targets import STRIDE, make_targets

__all__ = ["KeypointDataset"]


class KeypointDataset(Dataset):
    """``length`` samples per epoch of (input (4, 256, 512), targets dict) pairs.

    Args:
        samples: the dataset's (image path, label) pairs; None with ``scenes``.
        pre: the input contract (the runtime part's ``input_spec``).
        length: samples per epoch.
        seed: with the epoch and the index, decides every random choice.
        augment: apply the augmentations of SPEC.md (geometry, blur, colour, noise).
        scenes: render a fresh synthetic scene per sample with these options instead.
    """

    def __init__(self, samples: list[tuple[Path, KeypointLabel]] | None, pre: Preprocess, *, length: int, seed: int,
                 augment: bool = True, scenes: SceneOptions | None = None) -> None:
        if not samples and scenes is None:
            raise InvalidInputError("no training images; expected at least one labelled image in train.json")
        self.samples = samples or []
        self.pre = pre
        self.length = length
        self.seed = seed
        self.augment = AugmentOptions() if augment else None
        self.scenes = scenes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _source(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """(H, W, 3) image in 0..255 and its label as a dict (points in source pixels)."""
        if self.scenes is not None:
            scene = render_scene(rng, self.scenes)
            return scene.image, scene.label()
        path, label = self.samples[int(rng.integers(len(self.samples)))]
        image = read_image(path, channels=(0, 1, 2))
        if image.shape[1:] != (label.height, label.width):
            raise InvalidInputError(f"{path} is {image.shape[2]}x{image.shape[1]} but its label says "
                                    f"{label.width}x{label.height}")
        points = {name: list(map(float, label.points[k])) for k, name in enumerate(POINTS)}
        return np.moveaxis(image, 0, -1), {**points, "angle": label.angle}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, label = self._source(rng)
        if self.augment is not None:
            image, label = augment(image, label, rng, self.augment)
        chw = np.ascontiguousarray(np.moveaxis(np.asarray(image, np.float32), -1, 0))
        tensor, transform = to_tensor(chw, self.pre)
        points = transform.to_input(np.array([label[name] for name in POINTS]))
        targets = make_targets(torch.from_numpy(points), float(label["angle"]),
                               (self.pre.height // STRIDE, self.pre.width // STRIDE))
        return torch.from_numpy(tensor), {"heatmaps": targets.heatmaps, "offsets": targets.offsets,
                                          "cells": targets.cells, "angle": targets.angle}
