"""The whole path for every registered family: checkpoint -> export -> every precision -> every backend -> CLI.

Parametrized over the registry through the ``family`` fixture: registering a
family is enough to run these on it. The raw-output tolerances between engines
are those measured and documented in ``tests/runtime/test_backends.py``.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

import runtime
from runtime import Session
from runtime._backends import load
from runtime._options import Backend, SessionOptions
from runtime._manifest import read_verified_graph
from runtime.core import parse_manifest, prepare, read_manifest, write_tiff

PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("onnxruntime", pytest.param("openvino", marks=pytest.mark.openvino), "native")
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-3, "int8": 2.5e-2}


def _engine(backend: str, bundle, precision: str):
    manifest = read_manifest(bundle)
    entry = manifest.graph(precision=precision)
    try:
        return entry, load(Backend(backend), read_verified_graph(bundle, entry), device="cpu",
                           options=SessionOptions(threads=2), source=entry.file)
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_output_agrees_with_onnxruntime(family_bundle, family_images, backend, precision):
    pre = read_manifest(family_bundle).preprocess
    feeds = np.stack([prepare(image, pre)[0] for image in family_images])
    entry, reference = _engine("onnxruntime", family_bundle, precision)
    _, engine = _engine(backend, family_bundle, precision)
    name = entry.image_input().name
    expected, actual = reference.run({name: feeds}), engine.run({name: feeds})
    assert set(actual) == {o.name for o in entry.outputs}
    exact = backend in ("onnxruntime", "native")  # the same engine underneath
    tolerance = 1e-6 if exact else TOLERANCES[precision]
    roles = {o.role: o.name for o in entry.outputs}
    if DECODED <= set(roles):
        _decoded_keypoints_agree(*([r[roles[k]] for k in ("points", "scores", "angle")] for r in (expected, actual)),
                                 tolerance)
        return
    for out in entry.outputs:
        diff = float(np.abs(actual[out.name].astype(np.float64) - expected[out.name]).max())
        assert diff <= tolerance, f"{out.name}: {diff:.3g}"


#: the roles of a graph that decodes keypoints inside (lhrnet's full graph)
DECODED = {"points", "scores", "angle"}
STRIDE = 4  # input pixels per heatmap cell of the keypoint families


def _decoded_keypoints_agree(expected, actual, tolerance):
    """Decoded keypoints of two engines agree: the same peak values, and the same point unless the peaks tie.

    The engines' heatmaps differ by up to ``tolerance``; two cells whose values lie
    that close are a tie, and each engine may pick either (the point then moves by
    cells, and the angle read there changes). Otherwise the point differs by the
    offsets' error (up to 2 * tolerance cells) and the angle by the (sin, cos) error.
    """
    (points, scores, angle), (their_points, their_scores, their_angle) = expected, actual
    score_diff = np.abs(their_scores.astype(np.float64) - scores)
    assert score_diff.max() <= 2 * tolerance, f"scores: {score_diff.max():.3g}"
    point_diff = np.abs(their_points.astype(np.float64) - points).max(axis=2)  # (B, K)
    same_cell = point_diff <= 2 * STRIDE * tolerance + 1e-4
    steady = same_cell.all(axis=1)  # images whose every point stayed: the angle is read at the same cells
    angle_diff = np.abs((their_angle.astype(np.float64) - angle + 180.0) % 360.0 - 180.0)[steady]
    assert angle_diff.size == 0 or angle_diff.max() <= np.degrees(2 * tolerance) + 1e-4, \
        f"angle: {angle_diff.max():.3g} degrees"


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_session_returns_the_family_result(family, family_bundle, family_images, backend, precision):
    part = runtime.get_family(family)
    try:
        session = Session(family_bundle, backend=backend, precision=precision, threads=2)
    except ImportError as exc:
        pytest.skip(str(exc))
    with session:
        results = session.run(family_images)
        one = session.run(family_images[0])
    assert len(results) == len(family_images)
    assert all(isinstance(r, part.result_type) for r in results)
    assert set(one.summary()) == set(part.summary_fields)
    assert one.summary() == results[0].summary()


def test_lone_graph_runs_like_its_bundle(family_bundle, family_images):
    with Session(family_bundle, backend="onnxruntime") as s, \
            Session(family_bundle / "model.fp32.onnx", backend="onnxruntime") as lone:
        assert lone.manifest.family == s.manifest.family
        assert lone.run(family_images[0]).summary() == s.run(family_images[0]).summary()


def test_manifest_carries_the_family_contract(family, family_bundle):
    manifest = parse_manifest(read_manifest(family_bundle).raw)
    part = runtime.get_family(family)
    assert manifest.family == family and manifest.variant in part.variants()
    assert manifest.preprocess == part.input_spec(manifest.variant)
    assert manifest.postprocess == part.postprocess_spec(manifest.variant)


def test_cli_writes_the_family_summary(family, family_bundle, family_images, tmp_path):
    from runtime import _cli

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, image in enumerate(family_images):
        write_tiff(inputs / f"{i:03d}.tiff", image)
    out = tmp_path / "out"
    assert _cli.main([str(family_bundle), str(inputs), "--out", str(out), "--no-progress", "--visualize"]) == 0
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    part = runtime.get_family(family)
    assert len(rows) == len(family_images) and all(r["status"] == "ok" for r in rows)
    assert all(field in rows[0] for field in part.summary_fields)
    for row in rows:
        assert row["outputs"] and all((out / name).is_file() for name in row["outputs"].split())
