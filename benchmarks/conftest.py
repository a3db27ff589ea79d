"""Bundles for the latency benchmarks, built once and cached: brn at full width 64 (stitched and fcn; a
small one) and lhrnet at full size (Lite-HRNet-18 + LiteFPN, 256x512).

Latency does not depend on the weights, so each checkpoint is an untrained network
(fixed seed); it is exported like a production model into ``benchmarks/.cache/``
(git-ignored) and reused by later runs. Delete that folder to rebuild.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime._options import default_threads

CACHE = Path(__file__).resolve().parent / ".cache"
REPORT = Path(__file__).resolve().parent / "report"
BASE_WIDTH = 64
LHRNET_VARIANT = "256x512"
#: the threads every benchmark uses: the runtime's default (physical cores, capped), what a user gets
THREADS = default_threads()
#: the gates' verdicts of this run, written to report/gates.json at the end for the report
GATES: list[dict] = []


def record(benchmark, *, path: str, backend: str, precision: str, graphs: dict[str, int] | None = None,
           images: int = 1, reference: str | None = None, **more) -> None:
    """What the report needs of one latency benchmark, in its ``extra_info``.

    Args:
        path: a readable name of what is timed ("stitched graph", "18 calls on the patch graph").
        graphs: ONNX file -> how many times one timed call runs it (for the work done: GMAC).
        images: images one call processes.
        reference: the name of the group's baseline path (speed-ups are against it).
    """
    from flops import graph_macs

    gmacs = sum(graph_macs(str(g)) * n for g, n in (graphs or {}).items()) / 1e9 if graphs else None
    benchmark.extra_info.update({"kind": "latency", "path": path, "backend": backend, "precision": precision,
                                 "images": images, "gmacs": gmacs, "reference": reference, "threads": THREADS,
                                 **more})


def gate(name: str, ratio: float, bar: float, *, at_most: bool = False, detail: str = "") -> None:
    """Record a gate's verdict for the report, then assert it."""
    passed = ratio <= bar if at_most else ratio >= bar
    GATES.append({"gate": name, "ratio": ratio, "bar": bar, "at_most": at_most, "passed": passed,
                  "detail": detail})
    assert passed, f"{name}: {ratio:.2f}, must be {'<=' if at_most else '>='} {bar} {detail}"


def pytest_sessionfinish(session, exitstatus):
    if GATES:
        import json

        REPORT.mkdir(exist_ok=True)
        (REPORT / "gates.json").write_text(json.dumps(GATES, indent=2) + "\n")


def untrained_checkpoint(base_width: int, cache: Path = CACHE) -> Path:
    """A brn checkpoint of seeded random weights: latency does not depend on the weights."""
    path = cache / f"brn_w{base_width}_untrained.pth"
    if path.is_file():
        return path
    import torch

    from training import get_training_family
    from training.checkpoint import save_checkpoint

    family = get_training_family("brn")
    arch = {**family.default_arch(), "base_width": base_width}
    torch.manual_seed(0)
    network = family.build_network(arch).eval()
    save_checkpoint(path, {"family": family.name, "variant": "strip", "model_state_dict": network.state_dict(),
                           "arch": arch, **family.checkpoint_fields("strip", arch), "epoch": 0, "seed": 0})
    return path


def untrained_lhrnet_checkpoint(cache: Path = CACHE) -> Path:
    """An lhrnet checkpoint of seeded random weights at the family's default (full) architecture."""
    path = cache / "lhrnet_untrained.pth"
    if path.is_file():
        return path
    import torch

    from training import get_training_family
    from training.checkpoint import save_checkpoint

    family = get_training_family("lhrnet")
    arch = family.default_arch()
    torch.manual_seed(0)
    network = family.build_network(arch).eval()
    save_checkpoint(path, {"family": family.name, "variant": LHRNET_VARIANT, "model_state_dict": network.state_dict(),
                           "arch": arch, **family.checkpoint_fields(LHRNET_VARIANT, arch), "epoch": 0, "seed": 0})
    return path


def cached_bundle(name: str, base_width: int, cache: Path = CACHE, **options) -> Path:
    """``cache/name``, exported (a minute or more at full width) unless a complete one is there.

    Random weights have no task accuracy to protect: every INT8 guard is opened
    (the accuracy search keeps nothing in float), so that every layer is quantized,
    as in a well-behaved model.
    """
    drops = {"pixel_auroc": 1.0, "decision_agreement": 1.0, "pixel_f1": 1.0}
    return _export(cache / name, lambda: untrained_checkpoint(base_width, cache),
                   **{"max_metric_drop": drops, **options})


def _export(bundle: Path, checkpoint, **options) -> Path:
    if (bundle / "manifest.json").is_file():
        return bundle
    from export import BuildOptions, build

    bundle.parent.mkdir(parents=True, exist_ok=True)
    settings = {"parity_images": 2, "calibration_synthetic": 4, **options}
    build(BuildOptions(checkpoint=checkpoint(), out=bundle, force=True, **settings))
    return bundle


def build_lhrnet_bundle(cache: Path = CACHE) -> Path:
    """The full-size lhrnet bundle: the decoded full graph in every precision, plus the raw network (base).

    A few minutes on 2 cores. Random weights locate nothing, so the INT8 guards
    (hit@5px, MAE) are opened wide and every layer but the decoding is quantized,
    as in a well-behaved model.
    """
    return _export(cache / "lhrnet", lambda: untrained_lhrnet_checkpoint(cache), layers=("base", "full"),
                   max_metric_drop={"hit@5px": 1.0, "mae": 1e9, "decision_agreement": 1.0})


def build_full_width_bundle(cache: Path = CACHE) -> Path:
    """The full-width stitched bundle: every precision of the full-image graph, plus the patch graphs."""
    return cached_bundle(f"brn_w{BASE_WIDTH}", BASE_WIDTH, cache, layers=("patch", "full"))


@pytest.fixture(scope="session")
def full_width_bundle() -> Path:
    return build_full_width_bundle()


@pytest.fixture(scope="session")
def full_width_fcn_bundle() -> Path:
    return cached_bundle(f"brn_w{BASE_WIDTH}_fcn", BASE_WIDTH, mode="fcn")


@pytest.fixture(scope="session")
def lhrnet_bundle() -> Path:
    return build_lhrnet_bundle()


def pytest_collection_modifyitems(config, items):
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        skip = pytest.mark.skip(reason="openvino is not installed (pip install 'edge-vision-sdk[openvino]')")
        for item in items:
            if "openvino" in item.keywords:
                item.add_marker(skip)
