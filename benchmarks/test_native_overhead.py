"""Overhead of libruntime's paths against raw ``onnxruntime`` Python on the same graph.

    .venv/bin/python -m pytest benchmarks/test_native_overhead.py -q -s --benchmark-columns=median,iqr,rounds

Not part of ``make test``. Needs ``runtime._native`` (pip install -e .) and, for
the C++ host column, ``make ctest`` (build/cpp/bindings/examples/host/runtime_host,
or set RUNTIME_HOST). Graphs:

- ``w64-full``: the production brn strip graph (base width 64, 976x176, 18 stitched
  patches inside), FP32 and INT8 - from benchmarks/.cache (see conftest.py);
- ``w4-full``: the same graph at base width 4 (~1 GMAC): per-call costs show;
- ``w4-patch``: one 128x128 patch at base width 4 (sub-millisecond): overhead dominates;
- ``lhrnet-fp32``, ``lhrnet-int8``: the full-size lhrnet keypoint graph (256x512, decoding
  inside) on a 480x640 RGB source, so the letterbox is part of every side - from
  benchmarks/.cache (see conftest.py).

Sides, all on one CPU provider with the same threads (2) and spinning (on, ONNX
Runtime's default): ``ort`` = the pre-processing in Python (brn: numpy scaling,
x * 1/255 of the 3 channels; lhrnet: the runtime's numpy letterbox, scaling and
mask, ``runtime.core.to_tensor``) then ``InferenceSession.run`` and the heatmap channel or
the points; ``native`` = the pybind11 shim (checks, letterbox and scaling in C++,
zero-copy in and out, GIL released); ``host`` = the example C++ host's own timer
around ``Session::run`` (median of its runs); ``native-openvino`` = libruntime's
OpenVINO plugin (f32 inference precision).
Ratios come from interleaved runs in one process, so a noisy neighbour hurts
every side alike; the gates are loose and only catch a shim gone wrong.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cached_bundle, gate

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
THREADS = 2


def _native():
    from runtime._backends.native import native_module

    try:
        return native_module()
    except ImportError as exc:
        pytest.skip(f"runtime._native is not built: {exc}")


def _small_bundle() -> Path:
    """A base-width-4 bundle (untrained, FP32, patch and full layers), cached like the full-width one."""
    return cached_bundle("brn_w4_native", 4, precisions=("fp32",), layers=("patch", "full"), calibration_synthetic=2)


def _graph(name: str, request) -> tuple[Path, str, str, int]:
    """(bundle, layer, precision, rounds); only the bundle this graph needs is built (``-k lhrnet`` builds no brn)."""
    if name.startswith("w64-full"):
        return request.getfixturevalue("full_width_bundle"), "full", name.rsplit("-", 1)[1], 4
    if name.startswith("lhrnet"):
        return request.getfixturevalue("lhrnet_bundle"), "full", name.rsplit("-", 1)[1], 8
    return _small_bundle(), name.split("-")[1], "fp32", 300 if name == "w4-patch" else 40


GRAPHS = ["w64-full-fp32", "w64-full-int8", "w4-full", "w4-patch", "lhrnet-fp32", "lhrnet-int8"]
#: the heavy graphs: a few long calls, two blocks, a tight gate
HEAVY = ("w64", "lhrnet")
#: (height, width) of the source image of a letterboxing family: a camera frame, not the graph's size
LETTERBOX_SOURCE = (480, 640)


def _image(size: tuple[int, int], channels: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.round(rng.uniform(0, 255, (channels, *size))).astype(np.float32)


def _ort_side(graph_file: Path, scale: float):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(graph_file), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    s = np.float32(scale)

    def run(image: np.ndarray) -> np.ndarray:
        return session.run(None, {name: (image[None, :3] * s)})[0][0, 0]

    return run


def _ort_keypoints_side(bundle: Path, graph_file: Path, output: str):
    """The letterbox, mask and scaling of the runtime's Python pre-processing, then the graph: ``output``."""
    import onnxruntime as ort

    from runtime.core import read_manifest, to_tensor

    pre = read_manifest(bundle).preprocess
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(graph_file), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(image: np.ndarray) -> np.ndarray:
        tensor, _ = to_tensor(image, pre)
        return session.run([output], {name: tensor[None]})[0][0]

    return run


def _sides(bundle: Path, layer: str, precision: str):
    """Side name -> one call on a (C, H, W) float32 source image; and that image's (C, H, W)."""
    native = _native()
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(g for g in manifest["graphs"] if g["layer"] == layer and g["precision"] == precision)
    sessions = {"native": native.Session(bundle, layer=layer, precision=precision, threads=THREADS)}
    if native.has_backend("openvino"):
        sessions["native-openvino"] = native.Session(bundle, backend="openvino", layer=layer, precision=precision,
                                                     threads=THREADS)
    post = manifest["postprocess"]
    if post["kind"] == "heatmap":
        sides = {"ort": _ort_side(bundle / entry["file"], manifest["preprocess"]["scale"])}
        sides.update({side: (lambda image, s=s: s.run_heatmap(image)[0][0]) for side, s in sessions.items()})
        return sides, (4, *entry["inputs"][0]["shape"][2:])
    # Keypoints: the comparison is the heatmap peaks (scores); an untrained network's heatmaps are
    # flat near their prior, and which of near-tied cells the argmax picks is a coin toss.
    output = post["scores_output"]
    sides = {"ort": _ort_keypoints_side(bundle, bundle / entry["file"], output)}
    sides.update({side: (lambda image, s=s: s.run(image)[0][output][0]) for side, s in sessions.items()})
    return sides, (len(manifest["preprocess"]["read_channels"]), *LETTERBOX_SOURCE)


def _interleaved(sides: dict, image: np.ndarray, rounds: int, blocks: int = 5) -> dict[str, float]:
    """Median seconds per call of each side; the sides take turns in blocks of calls.

    Blocks rather than single calls: each engine's worker threads spin for a while
    after a call, and would steal the cores from whichever side runs next; the first
    call of every block absorbs that and is not counted.
    """
    times = {name: [] for name in sides}
    per_block = max(2, rounds // blocks)
    for _ in range(blocks):
        for name, run in sides.items():
            run(image)  # warm-up of the block
            for _ in range(per_block):
                start = time.perf_counter()
                run(image)
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def _host_median_ms(bundle: Path, layer: str, precision: str, image: np.ndarray, rounds: int,
                    tmp_path: Path) -> float | None:
    host = Path(os.environ.get("RUNTIME_HOST", ROOT / "build/cpp/bindings/examples/host/runtime_host"))
    if not host.is_file():
        return None
    import tifffile

    tiff = tmp_path / "input.tiff"
    tifffile.imwrite(tiff, image, photometric="minisblack")  # one page per channel, as the dataset
    done = subprocess.run([str(host), str(bundle), str(tiff), str(tmp_path / "heatmap.tiff"), "--layer", layer,
                           "--precision", precision, "--threads", str(THREADS), "--repeat", str(rounds + 1)],
                          capture_output=True, text=True, check=True)
    return float(re.search(r"median ([0-9.]+) ms", done.stdout).group(1))


@pytest.mark.parametrize("graph", GRAPHS)
def test_native_overhead(benchmark, request, graph, tmp_path):
    bundle, layer, precision, rounds = _graph(graph, request)
    sides, (c, h, w) = _sides(bundle, layer, precision)
    image = _image((h, w), c)
    np.testing.assert_allclose(sides["native"](image), sides["ort"](image), atol=1e-6, rtol=0)

    heavy = graph.startswith(HEAVY)
    medians = _interleaved(sides, image, rounds, blocks=2 if heavy else 5)
    host_ms = _host_median_ms(bundle, layer, precision, image, rounds, tmp_path)
    benchmark.group = f"native overhead: {graph}"
    benchmark.pedantic(sides["native"], args=(image,), rounds=min(rounds, 20), iterations=1, warmup_rounds=1)

    ort_ms = medians["ort"] * 1e3
    info = {"kind": "overhead", "graph": graph, "image": "x".join(map(str, image.shape)), "threads": THREADS, "ort_ms": ort_ms,
            "native_ms": medians["native"] * 1e3,
            "native_over_ort": medians["native"] / medians["ort"]}
    if host_ms is not None:
        info.update(host_ms=host_ms, host_over_ort=host_ms / ort_ms)
    if "native-openvino" in medians:
        info.update(openvino_ms=medians["native-openvino"] * 1e3,
                    openvino_over_native_ort=medians["native-openvino"] / medians["native"])
    benchmark.extra_info.update(info)
    print("\n" + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))

    # Loose gates: the shim must stay a thin layer over the same engine.
    gate(f"native / raw onnxruntime, {graph}", info["native_over_ort"], 1.15 if heavy else 1.5, at_most=True,
         detail=f"({info['native_ms']:.2f} vs {ort_ms:.2f} ms)")
