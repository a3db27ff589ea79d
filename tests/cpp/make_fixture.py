"""CTest fixture: a tiny brn bundle plus reference outputs from Python ONNX Runtime.

Models are never committed, so the C++ tests make their own: a base-width-4
network trained for one step, exported in FP32 (base, patch and full layers),
then run through ``onnxruntime.InferenceSession`` on a fixed input. The C++
tests must reproduce these outputs (max abs diff < 1e-6 on the CPU provider).

Writes into OUT:
    bundle/                 the export bundle
    input.f32               (2, 4, 976, 176) float32 CHW images in 0..255 (mask channel included)
    input.tiff              the first image as the dataset writes it (4 pages of 976x176 float32)
    input_hwc.tiff          the same image as one page of 4 interleaved float32 samples
    ref_full.f32            model.fp32.onnx output for input.f32, (2, 3, 976, 176)
    ref_patch.f32           patch.fp32.onnx output for the top-left 128x128 crops, (2, 3, 128, 128)
    ref_base.f32            base.fp32.onnx output for the same crops, (2, 2, 128, 128)
    patch_input.f32         those crops, (2, 4, 128, 128) CHW
    tampered.fp32.onnx      model.fp32.onnx with one weight changed and its metadata kept
    fixture.json            shapes and file names

Usage: python tests/cpp/make_fixture.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _reference(graph: Path, scaled: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: scaled})[0].astype(np.float32)


def _preprocess(images: np.ndarray, scale: float) -> np.ndarray:
    # What libruntime does: drop the mask channel, clip to 0..255, multiply by the manifest's scale.
    return np.ascontiguousarray(np.clip(images[:, :3], 0.0, 255.0) * np.float32(scale), dtype=np.float32)


def _images(rng: np.random.Generator, batch: int, height: int, width: int) -> np.ndarray:
    # Textured strips with a few bright spots: enough structure for the heatmap to vary.
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    base = 120 + 40 * np.sin(y / 7.0) * np.cos(x / 5.0)
    images = np.empty((batch, 4, height, width), np.float32)
    for b in range(batch):
        for c in range(3):
            images[b, c] = base + rng.normal(0, 8, (height, width))
        for _ in range(6):
            cy, cx = rng.integers(4, height - 4), rng.integers(4, width - 4)
            images[b, 0, cy - 1:cy + 2, cx - 2:cx + 3] += 80
        images[b, 3] = 0.0
    return np.clip(images, 0, 255).astype(np.float32)


def _tamper(graph: Path, out: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init).copy()
    values.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(out))  # metadata_props (sdk.manifest, sdk.graph_sha256) are kept


def make_fixture(out: Path) -> Path:
    from export import BuildOptions, build
    from training.make_dataset import make_dataset
    from training.train import TrainConfig, train

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runtime-fixture-") as tmp:
        data = make_dataset(Path(tmp) / "data", seed=1, n_train=2, n_test_good=1, n_test_defect=1)
        run = train(TrainConfig(out=Path(tmp) / "run", data=data, base_width=4, epochs=1, steps_per_epoch=1,
                                batch_size=2, eval_every=1, seed=0, progress=False))
        bundle = out / "bundle"
        build(BuildOptions(checkpoint=run.best, out=bundle, precisions=("fp32",), layers=("base", "patch", "full"),
                           parity_images=2, calibration_synthetic=1, force=True))

    manifest = json.loads((bundle / "manifest.json").read_text())
    pre = manifest["preprocess"]
    height, width, scale = pre["height"], pre["width"], pre["scale"]
    rng = np.random.default_rng(7)
    images = _images(rng, 2, height, width)
    images.tofile(out / "input.f32")
    _reference(bundle / "model.fp32.onnx", _preprocess(images, scale)).tofile(out / "ref_full.f32")

    patch = np.ascontiguousarray(images[:, :, :128, :128])
    patch.tofile(out / "patch_input.f32")
    _reference(bundle / "patch.fp32.onnx", _preprocess(patch, scale)).tofile(out / "ref_patch.f32")
    _reference(bundle / "base.fp32.onnx", _preprocess(patch, scale)).tofile(out / "ref_base.f32")

    import tifffile

    # As the dataset writes them: 4 pages of (H, W), one per channel (runtime._imageio uses minisblack).
    tifffile.imwrite(out / "input.tiff", images[0], photometric="minisblack")
    # One page of 4 interleaved samples (HWC): the host must read this layout too.
    tifffile.imwrite(out / "input_hwc.tiff", np.ascontiguousarray(images[0].transpose(1, 2, 0)),
                     photometric="rgb", planarconfig="contig", extrasamples=["unspecified"])
    _tamper(bundle / "model.fp32.onnx", out / "tampered.fp32.onnx")

    (out / "fixture.json").write_text(json.dumps({
        "batch": 2, "channels": 4, "height": height, "width": width, "patch": 128,
        "threshold": manifest["postprocess"]["threshold"],
    }, indent=2))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    make_fixture(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
