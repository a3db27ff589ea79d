"""brn training reads PNG/JPEG datasets in the order the runtime reads them: Target in the file's blue plane."""

from __future__ import annotations

import numpy as np
from PIL import Image

from runtime import get_family
from runtime._preprocess import read_source
from runtime.families.brn import image_type
from training.families.brn.data import ImageCache


def test_image_cache_reads_an_opencv_png_as_the_runtime_does(tmp_path):
    t = image_type("square")
    rng = np.random.default_rng(0)
    target, first, second = (rng.integers(lo, lo + 50, (t.height, t.width), dtype=np.uint8) for lo in (10, 100, 200))
    path = tmp_path / "good.png"
    Image.fromarray(np.stack([second, first, target], axis=-1)).save(path)  # cv2.imwrite of the BGR array

    for size in (0, 2):  # uncached and cached
        image = ImageCache(size, (t.height, t.width)).load(path)
        np.testing.assert_array_equal(image, np.stack([target, first, second]).astype(np.float32))
    np.testing.assert_array_equal(ImageCache(0, (t.height, t.width)).load(path),
                                  read_source(path, get_family("brn").input_spec("square")))
