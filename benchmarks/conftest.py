"""A full-width (base width 64) brn bundle for the latency benchmarks, built once and cached.

Latency does not depend on the weights, so the checkpoint is an untrained network
(fixed seed); it is exported like a production model into ``benchmarks/.cache/``
(git-ignored) and reused by later runs. Delete that folder to rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parent / ".cache"
BASE_WIDTH = 64
BUNDLE_NAME = f"brn_w{BASE_WIDTH}"


def build_full_width_bundle(cache: Path = CACHE) -> Path:
    """Return the cached bundle, exporting it first (a few minutes) when it is missing or incomplete."""
    bundle = cache / BUNDLE_NAME
    if (bundle / "manifest.json").is_file():
        manifest = json.loads((bundle / "manifest.json").read_text())
        if {g["precision"] for g in manifest["graphs"] if g["layer"] == "full"} >= {"fp32", "fp16", "int8"}:
            return bundle
    import torch

    from export import BuildOptions, build
    from runtime import get_family
    from training.checkpoint import REQUIRED_KEYS, save_checkpoint

    family = get_family("brn")
    image_type = family.image_type("strip")
    arch = {**family.default_config, "base_width": BASE_WIDTH}
    torch.manual_seed(0)
    network = family.build_network(arch).eval()
    checkpoint = cache / f"{BUNDLE_NAME}_untrained.pth"
    payload = {"family": family.name, "model_state_dict": network.state_dict(), "arch": arch,
               "img_height": image_type.patch_height, "img_width": image_type.patch_width,
               "image_type": image_type.name, "epoch": 0, "seed": 0}
    assert set(REQUIRED_KEYS) <= set(payload)
    save_checkpoint(checkpoint, payload)
    # Random weights have no task accuracy to protect: skip the INT8 accuracy search
    # (max_auroc_drop=1) so that every layer is quantized, as in a well-behaved model.
    build(BuildOptions(checkpoint=checkpoint, out=bundle, parity_images=2, calibration_synthetic=4,
                       max_auroc_drop=1.0, force=True))
    return bundle


@pytest.fixture(scope="session")
def full_width_bundle() -> Path:
    return build_full_width_bundle()


def pytest_collection_modifyitems(config, items):
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        skip = pytest.mark.skip(reason="openvino is not installed (pip install 'edge-vision-sdk[openvino]')")
        for item in items:
            if "openvino" in item.keywords:
                item.add_marker(skip)
