"""brn training samples: a random patch of a defect-free image plus on-the-fly defects."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.core import InvalidInputError, read_image
from runtime.families.brn import COLOR_ORDER, ImageType
from training.families.brn.defects import DefectConfig, synthesize_sample

__all__ = ["DefectPatchDataset", "ImageCache"]


class ImageCache:
    """Least-recently-used cache of decoded images (``size`` 0 disables it).

    A PNG/JPEG is read in brn's :data:`~runtime.families.brn.COLOR_ORDER` (Target
    in the blue plane, as OpenCV writes it), exactly as the runtime reads it.
    """

    def __init__(self, size: int, expected_hw: tuple[int, int], what: str | None = None) -> None:
        self.size = size
        self.expected_hw = expected_hw
        self.what = what
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()

    def load(self, path: Path) -> np.ndarray:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        image = read_image(path, expected_hw=self.expected_hw, what=self.what, color_order=COLOR_ORDER)
        if self.size > 0:
            self._items[path] = image
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return image


class DefectPatchDataset(Dataset):
    """``length`` samples per epoch; sample ``i`` of epoch ``e`` is a pure function of (seed, e, i).

    Each sample crops a random patch from a random training image, then adds
    defects (or, at ``defects.line_negative_rate``, a Target-only line) to the
    patch (never to the whole image: 60x less work per sample).

    Raises:
        InvalidInputError: no paths, or a defect kernel larger than the patch.
    """

    def __init__(self, paths: list[Path], image_type: ImageType, *, length: int, seed: int,
                 defects: DefectConfig | None = None, cache_size: int = 0) -> None:
        if not paths:
            raise InvalidInputError("no training images; expected at least one defect-free image")
        self.paths = list(paths)
        self.image_type = image_type
        self.length = length
        self.seed = seed
        self.defects = defects or DefectConfig()
        self.defects.check_fits(image_type.patch_height, image_type.patch_width,
                                f"patches of image type {image_type.name!r} (--defect-kernels)")
        self.cache = ImageCache(cache_size, (image_type.height, image_type.width), f"image type {image_type.name!r}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = self.cache.load(self.paths[int(rng.integers(len(self.paths)))])
        t = self.image_type
        y = int(rng.integers(0, t.height - t.patch_height + 1))
        x = int(rng.integers(0, t.width - t.patch_width + 1))
        patch = image[:, y:y + t.patch_height, x:x + t.patch_width]
        sample, mask, _ = synthesize_sample(patch, rng, self.defects)
        return torch.from_numpy(sample / np.float32(255.0)), torch.from_numpy(mask.astype(np.float32))[None]
