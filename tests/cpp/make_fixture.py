"""CTest fixture for one model family: a tiny bundle, sample inputs and reference outputs from Python.

Models are never committed, so the C/C++ tests make their own, through the
family-generic smoke API: ``training.smoke.build_tiny_bundle`` trains a tiny
network of the family for a few steps and exports it (base, patch and full
layers, fp32), ``training.smoke.sample_images`` gives source images as the
family's users pass them. References: the Python pre-processing
(``runtime._preprocess.prepare``) followed by a plain
``onnxruntime.InferenceSession`` (CPU provider). libruntime must reproduce them
(max abs diff < 1e-6 with exact resize, < 1e-4 where a letterbox is involved).

Writes into OUT (fixture.json describes every file; arrays are raw float32, C order):
    bundle/                     the export bundle
    image_<i>.f32               source image i, (C, H, W) in the source range
    tensor_<i>.f32              the graph tensor Python makes of it (for prescaled runs)
    ref_full_<i>_<k>.f32        output k of the full graph for image i (batch 1)
                                (keypoints kind: fixture.json also records, per image, the points
                                runtime.Session returns, in source pixels, their scores and the angle)
    <layer>_input.f32           source image for the patch/base graph (a crop, or the image when letterboxed)
    ref_<layer>_<k>.f32         output k of that graph
    letterbox/bundle/           a bundle that letterboxes: a copy whose manifest says resize letterbox
                                (families with exact resize), or a copy of the bundle (letterbox families)
    letterbox_input.f32         a source image of another size than the graph's; ref_letterbox_<k>.f32 its outputs
    lb_<j>_input.f32 ...        the letterbox alone (runtime/_letterbox.py) on odd sizes: canvas and mask
    input.tiff, input_hwc.tiff  image 0 as one page per channel, and as one page of interleaved samples
    tampered.fp32.onnx          the full graph with one weight changed and its metadata kept
    nonfinite/<output>/bundle/  keypoints kind: the full graph with a NaN (points, scores) or an
                                infinity (angle) added to one output; the Python runtime's error is
                                recorded (it must be a BackendError)
    fixture.json

Usage: python tests/cpp/make_fixture.py --family NAME --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _save(out: Path, name: str, array: np.ndarray) -> str:
    np.ascontiguousarray(array, dtype=np.float32).tofile(out / name)
    return name


def _transform(t) -> dict:
    return {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}


class _Graph:
    """One graph of the bundle on Python ONNX Runtime, outputs in the manifest's order."""

    def __init__(self, bundle: Path, entry) -> None:
        import onnxruntime as ort

        self.entry = entry
        self.session = ort.InferenceSession(str(bundle / entry.file), providers=["CPUExecutionProvider"])
        self.image = entry.image_input()
        self.names = [o.name for o in entry.outputs]

    def size(self) -> tuple[int, int]:
        return int(self.image.shape[2]), int(self.image.shape[3])

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o, np.float32) for o in self.session.run(self.names, {self.image.name: tensor[None]})]


def _write_refs(out: Path, prefix: str, outputs: list[np.ndarray]) -> list[str]:
    return [_save(out, f"{prefix}_{k}.f32", o) for k, o in enumerate(outputs)]


def _letterbox_units(out: Path, pre, rng: np.random.Generator) -> list[dict]:
    """The letterbox alone, as runtime/_letterbox.py computes it: upscale, downscale, a thin strip."""
    from runtime._letterbox import letterbox

    height, width = pre.height, pre.width
    pad = float(pre.pad_value if pre.pad_value is not None else pre.source_range[0])
    cases = []
    for j, (h, w) in enumerate([(max(1, height // 3 + 1), max(1, width // 2 + 3)),
                                (2 * height + 5, 3 * width - 1), (1, max(2, width + 7))]):
        low, high = pre.source_range
        image = rng.uniform(low, high, (2, h, w)).astype(np.float32)
        canvas, valid, t = letterbox(image, height, width, pad)
        cases.append({"input": _save(out, f"lb_{j}_input.f32", image), "shape": [2, h, w],
                      "canvas": _save(out, f"lb_{j}_canvas.f32", canvas), "mask": _save(out, f"lb_{j}_mask.f32", valid),
                      "height": height, "width": width, "pad_value": pad, "transform": _transform(t)})
    return cases


def _write_tiffs(out: Path, image: np.ndarray) -> None:
    import tifffile

    # One page per channel, as production datasets are written.
    tifffile.imwrite(out / "input.tiff", image, photometric="minisblack")
    # One page of interleaved samples (HWC): the host must read this layout too.
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
    channels = image.shape[0]
    if channels >= 3:
        tifffile.imwrite(out / "input_hwc.tiff", hwc, photometric="rgb", planarconfig="contig",
                         extrasamples=["unspecified"] * (channels - 3))
    else:
        tifffile.imwrite(out / "input_hwc.tiff", hwc, photometric="minisblack", planarconfig="contig",
                         extrasamples=["unspecified"] * (channels - 1))


def _keypoints(session, post, image: np.ndarray) -> dict:
    """What the Python runtime decodes for one image: points in source pixels, scores, angle."""
    result = session.run(image)
    return {"points": [list(result.points[name]) for name in post.points],
            "scores": [result.scores[name] for name in post.points], "angle": result.angle}


def _tamper(graph: Path, out: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init).copy()
    values.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(out))  # metadata_props (sdk.manifest, sdk.graph_sha256) are kept


def _nonfinite(bundle: Path, entry, output: str, value: float, out: Path) -> Path:
    """A bundle of the full graph alone whose ``output`` has ``value`` added to its first element."""
    import onnx
    from onnx import helper, numpy_helper

    from runtime._manifest import sha256_file

    model = onnx.load(str(bundle / entry.file))
    finite = f"{output}_finite"
    for node in model.graph.node:  # the graph's tensor is renamed; the output becomes it + value
        node.input[:] = [finite if name == output else name for name in node.input]
        node.output[:] = [finite if name == output else name for name in node.output]
    spec = next(o for o in entry.outputs if o.name == output)
    offset = np.zeros([1, *spec.shape[1:]], np.float32)  # one image's worth, broadcast over the batch
    offset.flat[0] = value
    model.graph.initializer.append(numpy_helper.from_array(offset, f"{output}_offset"))
    model.graph.node.append(helper.make_node("Add", [finite, f"{output}_offset"], [output]))
    out.mkdir(parents=True)
    onnx.save(model, str(out / entry.file))
    data = json.loads((bundle / "manifest.json").read_text())
    graph = next(g for g in data["graphs"] if g["file"] == entry.file)
    graph.update(sha256=sha256_file(out / entry.file), bytes=(out / entry.file).stat().st_size)
    data.update(graphs=[graph], default_graph=entry.file)
    (out / "manifest.json").write_text(json.dumps(data, indent=2))
    return out


def _nonfinite_cases(out: Path, bundle: Path, entry, post, images: list[np.ndarray]) -> list[dict]:
    """One bundle per keypoint output with a non-finite value, and the Python runtime's refusal of it."""
    from runtime import BackendError, Session

    outputs = [(post.points_output, float("nan")), (post.scores_output, float("nan"))]
    if post.angle_output:
        outputs.append((post.angle_output, float("inf")))
    cases = []
    for output, value in outputs:
        poisoned = _nonfinite(bundle, entry, output, value, out / "nonfinite" / output / "bundle")
        with Session(poisoned, backend="onnxruntime", precision="fp32") as session:
            try:
                session.run(images)
            except BackendError as exc:
                error = str(exc)
            else:
                raise AssertionError(f"the Python runtime decoded a non-finite {output!r} without an error")
        if f"non-finite {output!r}" not in error:
            raise AssertionError(f"unexpected Python error for a non-finite {output!r}: {error}")
        cases.append({"output": output, "bundle": str(poisoned.relative_to(out)), "python_error": error})
    return cases


def make_fixture(family: str, out: Path) -> Path:
    from runtime import Session
    from runtime._manifest import read_manifest
    from runtime._preprocess import prepare
    from training.smoke import build_tiny_bundle, sample_images

    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(build_tiny_bundle(family, out / "bundle", precisions=("fp32",)))
    manifest = read_manifest(bundle)
    pre, post = manifest.preprocess, manifest.postprocess
    full = _Graph(bundle, manifest.graph(layer="full", precision="fp32"))
    rng = np.random.default_rng(7)
    keypoints = post.kind == "keypoints"

    images = [np.ascontiguousarray(i, dtype=np.float32) for i in sample_images(family, 2, seed=7)]
    entries = []
    with Session(bundle, backend="onnxruntime", precision="fp32") as session:
        for i, image in enumerate(images):
            tensor, t = prepare(image, pre)
            entries.append({"file": _save(out, f"image_{i}.f32", image), "shape": list(image.shape),
                            "tensor": _save(out, f"tensor_{i}.f32", tensor), "transform": _transform(t),
                            "refs": _write_refs(out, f"ref_full_{i}", full.run(tensor))})
            if keypoints:
                entries[-1]["keypoints"] = _keypoints(session, post, image)

    # Patch and base graphs: their own input size, the same pre-processing.
    layers = []
    for entry in manifest.graphs:
        if entry.layer == "full" or entry.precision != "fp32":
            continue
        graph = _Graph(bundle, entry)
        h, w = graph.size()
        source = images[0] if pre.resize == "letterbox" else images[0][:, :h, :w]
        if pre.resize == "exact" and source.shape[1:] != (h, w):
            continue  # an image smaller than the patch: nothing to crop
        tensor, _ = prepare(np.ascontiguousarray(source), dataclasses.replace(pre, height=h, width=w))
        layers.append({"layer": entry.layer, "input": _save(out, f"{entry.layer}_input.f32", source),
                       "shape": list(source.shape), "refs": _write_refs(out, f"ref_{entry.layer}", graph.run(tensor)),
                       "outputs": [{"name": o.name, "shape": [d if isinstance(d, int) else -1 for d in o.shape]}
                                   for o in entry.outputs]})

    # A letterboxing bundle and an image of another size than the graph's.
    lb_bundle = out / "letterbox" / "bundle"
    shutil.copytree(bundle, lb_bundle)
    lb_pre = pre
    if pre.resize != "letterbox":
        data = json.loads((lb_bundle / "manifest.json").read_text())
        data["preprocess"].update(resize="letterbox", pad_value=pre.source_range[0])
        (lb_bundle / "manifest.json").write_text(json.dumps(data, indent=2))
        lb_pre = read_manifest(lb_bundle).preprocess
    c, h, w = images[0].shape
    lb_source = np.ascontiguousarray(images[0][:, :max(1, h * 3 // 4), :max(1, w // 2 + 3)])
    if lb_source.shape[1:] == (pre.height, pre.width):
        lb_source = np.ascontiguousarray(images[0][:, :max(1, h - 1), :])
    tensor, t = prepare(lb_source, lb_pre)
    points = [[0.0, 0.0], [pre.width / 2, pre.height / 2], [float(pre.width), float(pre.height)],
              [t.pad_x + 0.5, t.pad_y + 0.5]]
    letterboxed = {"bundle": "letterbox/bundle", "min_size": lb_pre.min_size,
                   "input": _save(out, "letterbox_input.f32", lb_source),
                   "shape": list(lb_source.shape), "refs": _write_refs(out, "ref_letterbox", full.run(tensor)),
                   "transform": _transform(t), "points": points,
                   "mapped": t.to_source(np.array(points)).tolist()}
    if keypoints:
        with Session(lb_bundle, backend="onnxruntime", precision="fp32") as session:
            letterboxed["keypoints"] = _keypoints(session, post, lb_source)

    _write_tiffs(out, images[0])
    _tamper(bundle / full.entry.file, out / "tampered.fp32.onnx")

    heatmap = keypoint_facts = None
    if post.kind == "heatmap":
        heatmap = {"output": full.names.index(post.output), "channel": post.channel, "range": list(post.range),
                   "threshold": post.threshold}
    if keypoints:
        keypoint_facts = {"names": list(post.points), "threshold": post.score_threshold,
                          "has_angle": post.angle_output is not None,
                          "outputs": {"points": full.names.index(post.points_output),
                                      "scores": full.names.index(post.scores_output)},
                          "nonfinite": _nonfinite_cases(out, bundle, full.entry, post, images)}
    (out / "fixture.json").write_text(json.dumps({
        "family": family, "kind": post.kind, "resize": pre.resize, "full_graph": full.entry.file,
        "channels": pre.channels, "height": pre.height, "width": pre.width,
        "read_channels": list(pre.read_channels), "accepted_channels": list(pre.accepted_channels),
        "accepted_layouts": list(pre.accepted_layouts), "source_range": list(pre.source_range),
        "color_order": pre.color_order.value,
        "outputs": [{"name": o.name, "role": o.role, "shape": [d if isinstance(d, int) else -1 for d in o.shape]}
                    for o in full.entry.outputs],
        "images": entries, "layers": layers, "letterbox": letterboxed,
        "letterbox_units": _letterbox_units(out, lb_pre, rng), "heatmap": heatmap, "keypoints": keypoint_facts,
        "tiff": {"chw": "input.tiff", "hwc": "input_hwc.tiff", "image": 0},
    }, indent=2))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, help="model family (runtime.list_families())")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    make_fixture(args.family, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
