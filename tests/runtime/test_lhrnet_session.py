"""lhrnet through the runtime: ``Session`` on images of any size, ``evaluate`` on a labelled folder, the CLI's
files and figure, and bundles whose graph breaks its manifest's promises.

The bundle is the ``family_bundle`` fixture for lhrnet (shared with the registry-parametrized
tests, so it is built once per run) and the data ``family_dataset``. Expected values are computed
here without ``Session``: ONNX Runtime on the graph, the letterbox geometry by hand.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import runtime
from runtime import BackendError, InvalidInputError, KeypointsResult, ModelLoadError, Session
from runtime import _cli, _evaluate
from runtime._imageio import write_png, write_tiff
from runtime._letterbox import letterbox
from runtime._manifest import sha256_file
from runtime.core import letterbox_fit, read_image
from runtime.families import lhrnet

LHRNET = pytest.mark.parametrize("family", ["lhrnet"], indirect=True)
HEIGHT, WIDTH = 256, 512
POINTS = ("slot", "part")
METRICS = {"mae", "rmse", "hit@1px", "hit@2px", "hit@5px", "mae_slot", "mae_part", "angle_error"}
SUMMARY = ["file", "slot_x", "slot_y", "slot_score", "part_x", "part_y", "part_score", "angle", "latency_ms",
           "outputs", "status", "error"]


@pytest.fixture(scope="module")
def session(family_bundle):
    with Session(family_bundle, backend="onnxruntime", precision="fp32", threads=1) as s:
        yield s


def _scene(family_dataset, split: str = "train", index: int = 0) -> tuple[Path, dict]:
    entry = json.loads((family_dataset / f"{split}.json").read_text())["images"][index]
    return family_dataset / entry["file"], entry


def _arrays() -> list[np.ndarray]:
    """uint8 HWC images of several sizes and aspect ratios: wide, tall, the graph's own, tiny, odd."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for h, w in [(300, 1200), (900, 200), (HEIGHT, WIDTH), (8, 8), (37, 91)]]


def _geometry(h: int, w: int) -> tuple[float, float, int, int]:
    """scale_x, scale_y, pad_x, pad_y of the letterbox of an h x w image, from the SPEC's rule."""
    s = min(WIDTH / w, HEIGHT / h)
    new_w, new_h = min(WIDTH, max(1, math.floor(w * s + 0.5))), min(HEIGHT, max(1, math.floor(h * s + 0.5)))
    return new_w / w, new_h / h, (WIDTH - new_w) // 2, (HEIGHT - new_h) // 2


def _graph(bundle: Path, hwc_images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The fp32 graph's raw outputs on the letterboxed images, run by ONNX Runtime directly."""
    import onnxruntime as ort

    tensors = []
    for image in hwc_images:
        canvas, valid, _ = letterbox(np.moveaxis(image[..., :3], -1, 0).astype(np.float32), HEIGHT, WIDTH, 255.0)
        tensors.append(np.concatenate([canvas * np.float32(1 / 255), valid[None]]).astype(np.float32))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    engine = ort.InferenceSession(str(bundle / "model.fp32.onnx"), options, providers=["CPUExecutionProvider"])
    outputs = engine.run(None, {engine.get_inputs()[0].name: np.stack(tensors)})
    return {o.name: value for o, value in zip(engine.get_outputs(), outputs)}


def _in_source(points: np.ndarray, h: int, w: int) -> np.ndarray:
    scale_x, scale_y, pad_x, pad_y = _geometry(h, w)
    return np.stack([(points[:, 0] - pad_x) / scale_x, (points[:, 1] - pad_y) / scale_y], axis=-1)


# -- Session ------------------------------------------------------------------------------------------
@LHRNET
def test_points_are_the_graph_points_mapped_through_the_letterbox(session, family_bundle):
    images = _arrays()
    raw = _graph(family_bundle, images)
    assert raw["points"].shape == (len(images), 2, 2) and raw["angle"].shape == (len(images),)
    batch = session.run(images)  # one batch of five sizes: each letterboxed on its own
    assert [r.source for r in batch] == [f"images[{i}]" for i in range(len(images))]
    for i, (image, result) in enumerate(zip(images, batch)):
        assert isinstance(result, KeypointsResult) and tuple(result.points) == POINTS == tuple(result.scores)
        expected = _in_source(raw["points"][i].astype(np.float64), *image.shape[:2])
        np.testing.assert_allclose([result.points[n] for n in POINTS], expected, atol=1e-3)
        np.testing.assert_allclose([result.scores[n] for n in POINTS], raw["scores"][i], atol=1e-6)
        assert result.angle == pytest.approx(float(raw["angle"][i]), abs=1e-4)
        assert -180.0 <= result.angle <= 180.0
        one = session.run(image)  # alone, not in a batch: the same answer
        np.testing.assert_allclose([one.points[n] for n in POINTS], [result.points[n] for n in POINTS], atol=1e-3)


def test_the_letterbox_geometry_is_the_specs():
    # 1200 x 300 -> s = 512/1200: 512 x 128 centred, 64 rows of padding above and below
    assert _geometry(300, 1200) == pytest.approx((512 / 1200, 128 / 300, 0, 64))
    assert _geometry(900, 200) == pytest.approx((57 / 200, 256 / 900, 227, 0))
    fit = letterbox_fit(900, 200, HEIGHT, WIDTH)
    assert (fit.scale_x, fit.scale_y, fit.pad_x, fit.pad_y) == pytest.approx(_geometry(900, 200))


@LHRNET
def test_every_input_form_gives_the_same_points(session, family_dataset, tmp_path):
    path, entry = _scene(family_dataset)
    hwc = np.asarray(Image.open(path).convert("RGB"))
    assert hwc.shape[:2] == (entry["height"], entry["width"])
    chw = np.moveaxis(hwc, -1, 0).astype(np.float32)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([hwc, np.full(hwc.shape[:2], 9, np.uint8)])).save(rgba)  # alpha is not read
    tiff = tmp_path / "four.tiff"
    tifffile.imwrite(tiff, np.concatenate([chw, np.zeros((1, *chw.shape[1:]), np.float32)]), photometric="minisblack")
    reference = session.run(path).summary()
    forms = [str(path), hwc, chw, np.moveaxis(chw, 0, -1), chw.astype(np.float64), np.moveaxis(hwc, -1, 0),
             np.dstack([hwc, np.zeros(hwc.shape[:2], np.uint8)]), rgba, tiff]
    for form in forms:
        assert session.run(form).summary() == reference


@LHRNET
def test_result_repr_to_dict_and_threshold(session, family_bundle):
    image = _arrays()[0]
    result = session.run(image)
    assert result.threshold == session.threshold == session.manifest.postprocess.score_threshold
    data = json.loads(json.dumps(result.to_dict()))
    assert data["source"] == "array" and list(data["points"]) == list(POINTS)
    assert data["points"]["part"] == list(result.points["part"]) and data["angle"] == result.angle
    assert data["found"] == {n: result.scores[n] >= result.threshold for n in POINTS}
    text = repr(result)
    for name in POINTS:
        x, y = result.points[name]
        assert f"{name}=({x:.2f}, {y:.2f}) score {result.scores[name]:.3f}" in text
    assert text.startswith("KeypointsResult('array', ") and f"angle={result.angle:.2f}" in text
    for threshold, found in ((0.0, True), (1.0, False)):
        with Session(family_bundle, threads=1, threshold=threshold) as s:
            again = s.run(image)
        assert again.points == result.points and again.threshold == threshold
        assert all(again.found(n) is found for n in POINTS)
    with pytest.raises(KeyError):
        result.found("nozzle")


# -- evaluate -----------------------------------------------------------------------------------------
def _expected_metrics(bundle: Path, root: Path, split: str) -> dict[str, float]:
    entries = json.loads((root / f"{split}.json").read_text())["images"]
    images = [np.asarray(Image.open(root / e["file"]).convert("RGB")) for e in entries]
    raw = _graph(bundle, images)
    errors, angle_errors = [], []
    for i, (image, entry) in enumerate(zip(images, entries)):
        predicted = _in_source(raw["points"][i].astype(np.float64), *image.shape[:2])
        errors.append([math.dist(predicted[k], entry[name]) for k, name in enumerate(POINTS)])
        period = 360.0 / entry.get("symmetry", 1)
        difference = (float(raw["angle"][i]) - entry["angle"]) % period
        angle_errors.append(min(difference, period - difference))
    errors = np.array(errors)
    return {"mae": errors.mean(), "rmse": math.sqrt((errors ** 2).mean()), "mae_slot": errors[:, 0].mean(),
            "mae_part": errors[:, 1].mean(), "angle_error": float(np.mean(angle_errors)),
            **{f"hit@{r}px": float((errors <= r).mean()) for r in (1, 2, 5)}}


@LHRNET
def test_evaluate_reports_the_keypoint_metrics(family_bundle, family_dataset):
    row = runtime.evaluate(family_bundle, family_dataset, threads=1)  # lhrnet's split: valid
    valid = json.loads((family_dataset / "valid.json").read_text())["images"]
    assert (row["family"], row["split"], row["images"]) == ("lhrnet", "valid", len(valid))
    assert METRICS <= set(row)
    row = runtime.evaluate(family_bundle, family_dataset, split="train", threads=1)
    assert row["images"] == len(json.loads((family_dataset / "train.json").read_text())["images"]) > 5
    for name, value in _expected_metrics(family_bundle, family_dataset, "train").items():
        assert row[name] == pytest.approx(value, rel=1e-5, abs=1e-4), name
    assert 0.0 <= row["hit@1px"] <= row["hit@2px"] <= row["hit@5px"] <= 1.0
    assert row["rmse"] >= row["mae"] >= 0.0 and row["ms_median"] > 0


@LHRNET
def test_evaluate_cli_prints_the_keypoint_table(family_bundle, family_dataset, tmp_path, capsys):
    rows = tmp_path / "rows.json"
    code = _evaluate.main([str(family_bundle), str(family_dataset), "--backends", "onnxruntime", "--precisions",
                           "fp32,int8", "--threads", "1", "--json", str(rows), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[1].split()
    assert header[:4] == ["backend", "precision", "device", "images"]
    assert METRICS <= set(header) and "ms/image" in header
    written = json.loads(rows.read_text())
    assert [(r["precision"], r["split"]) for r in written] == [("fp32", "valid"), ("int8", "valid")]
    assert _evaluate.main([str(family_bundle), str(family_dataset), "--split", "test", "--no-progress"]) == 2
    assert "no 'test' split" in capsys.readouterr().err


@LHRNET
def test_evaluate_refuses_a_label_of_another_size(family_bundle, family_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(family_dataset, data)
    split = json.loads((data / "valid.json").read_text())
    entry = split["images"][0]
    entry["width"] += 10
    (data / "valid.json").write_text(json.dumps(split))
    with pytest.raises(InvalidInputError, match=rf"is {entry['width'] - 10}x{entry['height']} but its label says "
                                                rf"{entry['width']}x{entry['height']}"):
        runtime.evaluate(family_bundle, data, threads=1)


# -- the CLI ----------------------------------------------------------------------------------------------
def _summary(out: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(out / "summary.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), {Path(row["file"]).name: row for row in reader}


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Image files lhrnet refuses, and what the refusal says."""
    write_png(folder / "tiny.png", np.full((5, 300, 3), 80, np.uint8))
    Image.fromarray(np.full((60, 90), 80, np.uint8)).save(folder / "grey.png")
    Image.fromarray(np.full((60, 90, 2), 80, np.uint8)).save(folder / "greyalpha.png")
    write_tiff(folder / "nan.tiff", np.full((3, 40, 60), np.nan, np.float32))
    return {"tiny.png": "image too small: 5x300", "grey.png": "expected a 3-D image with 3 or 4 channels",
            "greyalpha.png": "expected 3 or 4 channels, got 2", "nan.tiff": "NaN or infinite"}


@LHRNET
def test_infer_cli_writes_points_and_the_letterbox_figure(session, family_bundle, family_dataset, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sources = {}
    for i in range(3):
        path, _ = _scene(family_dataset, index=i)
        sources[path.name] = shutil.copy2(path, folder / path.name)
    wide = write_tiff(folder / "wide.tiff", np.moveaxis(_arrays()[0], -1, 0).astype(np.float32))
    sources[wide.name] = wide
    bad = _bad_inputs(folder)
    out = tmp_path / "out"
    code = _cli.main([str(family_bundle), str(folder), "--out", str(out), "--visualize", "--no-progress",
                      "--threads", "1"])
    assert code == 1 and f"{len(bad)} input(s) failed" in capsys.readouterr().err
    fields, rows = _summary(out)
    assert fields == SUMMARY and set(rows) == set(sources) | set(bad)
    for name, path in sources.items():
        row, stem = rows[name], Path(name).stem
        expected = session.run(path)
        assert row["status"] == "ok" and {k: row[k] for k in expected.summary()} == expected.summary()
        assert row["outputs"].split() == [f"{stem}_points.png", f"{stem}_letterbox.png"]
        width, height = Image.open(out / f"{stem}_points.png").size
        source_hw = read_image(path).shape[1:]
        assert (height, width) == source_hw  # the points picture is the source image, at its size
        figure = Image.open(out / f"{stem}_letterbox.png")
        assert figure.size[0] >= WIDTH and figure.size[1] > HEIGHT + min(source_hw)
    for name, message in bad.items():
        assert rows[name]["status"] == "error" and message in rows[name]["error"] and rows[name]["outputs"] == ""
        assert not list(out.glob(f"{Path(name).stem}_*")), name  # nothing half-written for a refused image
    plain = tmp_path / "plain"
    assert _cli.main([str(family_bundle), str(sources["wide.tiff"]), "--out", str(plain), "--no-progress",
                      "--threads", "1"]) == 0
    assert sorted(p.name for p in plain.iterdir()) == ["summary.csv", "wide_points.png"]


@LHRNET
def test_infer_cli_failing_figure_leaves_no_points_picture(family_bundle, family_dataset, tmp_path, monkeypatch):
    path, _ = _scene(family_dataset)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lhrnet, "letterbox_figure", full_disk)
    out = tmp_path / "out"
    assert _cli.main([str(family_bundle), str(path), "--out", str(out), "--visualize", "--no-progress",
                      "--threads", "1"]) == 1
    _, rows = _summary(out)
    assert rows[path.name]["status"] == "error" and "No space left" in rows[path.name]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]


# -- the figure ---------------------------------------------------------------------------------------
def test_canvas_panel_marks_the_padding_the_image_and_the_points():
    pre = lhrnet.FAMILY.input_spec(lhrnet.VARIANT)
    image = np.full((3, 100, 400), 40.0, np.float32)  # wide: 512 x 128 on the canvas, 64 rows above and below
    result = KeypointsResult("a", {"slot": (100.0, 50.0), "part": (300.0, 20.0)}, {"slot": 0.9, "part": 0.8},
                             10.0, 0.1)
    panel, transform, located = lhrnet.canvas_panel(image, result, pre)
    assert panel.shape == (HEIGHT, WIDTH, 3) and panel.dtype == np.uint8
    assert (transform.pad_x, transform.pad_y, transform.resized_height) == (0, 64, 128)
    assert list(located) == list(POINTS)
    np.testing.assert_allclose([located[n] for n in POINTS], [(128.0, 128.0), (384.0, 89.6)], atol=1e-9)
    hatch = np.all(panel == np.round(0.5 * 255 + 0.5 * np.array([70, 110, 200])), axis=-1)
    assert hatch[:62].mean() > 0.3 and hatch[194:].mean() > 0.3  # padding: stripes
    assert not hatch[64:192].any()  # the image is left as it is, but for the points drawn on it
    assert (panel[63, 10:500] == (230, 40, 200)).all() and (panel[192, 10:500] == (230, 40, 200)).all()
    assert (panel[100, 10:50] == 40).all()
    for name, (x, y) in located.items():
        near = panel[int(y) - 12:int(y) + 12, int(x) - 12:int(x) + 12].reshape(-1, 3)
        assert (near == lhrnet.COLOURS[name]).all(axis=1).any(), name
    figure = lhrnet.letterbox_figure(image, result, pre)
    assert figure.shape[0] > HEIGHT + 256 and figure.shape[1] >= 2 * 400  # the source shown at twice its size
    with pytest.raises(InvalidInputError, match="needs a letterbox pre-processing"):
        lhrnet.canvas_panel(image, result, lhrnet.Preprocess(**{**pre.__dict__, "resize": "exact"}))


# -- bundles that break their manifest's promises --------------------------------------------------------
def _fake_bundle(real: Path, out: Path, *, points: int = 2, scores: int = 2, nan: bool = False) -> Path:
    """The real bundle's manifest over a hand-made graph whose outputs are declared like the real ones, but
    whose ``scores`` axis is dynamic (and really holds ``scores`` values) and whose points may be NaN."""
    import onnx
    from onnx import TensorProto, helper

    manifest = json.loads((real / "manifest.json").read_text())
    entry = next(g for g in manifest["graphs"] if g["layer"] == "full" and g["precision"] == "fp32")
    name = entry["inputs"][0]["name"]
    initializers = []

    def constant(*values: int) -> str:
        initializers.append(helper.make_tensor(f"c{len(initializers)}", TensorProto.INT64, [len(values)], values))
        return initializers[-1].name

    # Every output holds the mean of the input tensor. The scores' length is computed from the input's
    # values (0 * max + scores), so that neither ONNX shape inference nor ONNX Runtime can know it.
    initializers.append(helper.make_tensor("count", TensorProto.FLOAT, [1], [float(scores)]))
    nodes = [helper.make_node("ReduceMean", [name], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["mean", constant(1)], ["column"]),
             helper.make_node("Expand", ["column", constant(1, 2 * points)], ["wide"]),
             helper.make_node("Reshape", ["wide", constant(-1, points, 2)], ["raw_points"]),
             helper.make_node("ReduceMax", [name], ["top"], keepdims=0),
             helper.make_node("Mul", ["top", "zero"], ["nothing"]),
             helper.make_node("Add", ["nothing", "count"], ["length"]),
             helper.make_node("Cast", ["length"], ["length64"], to=TensorProto.INT64),
             helper.make_node("Concat", [constant(1), "length64"], ["scores_shape"], axis=0),
             helper.make_node("Expand", ["column", "scores_shape"], ["scores"]),
             helper.make_node("Reshape", ["mean", constant(-1)], ["angle"])]
    initializers.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    if nan:
        initializers.append(helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]))
        nodes.append(helper.make_node("Mul", ["raw_points", "nan"], ["points"]))
    else:
        nodes.append(helper.make_node("Identity", ["raw_points"], ["points"]))
    graph = helper.make_graph(nodes, "fake", [helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                                            ["N", 4, HEIGHT, WIDTH])],
                              [helper.make_tensor_value_info("points", TensorProto.FLOAT, ["N", points, 2]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", "k"]),
                               helper.make_tensor_value_info("angle", TensorProto.FLOAT, ["N"])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out.mkdir()
    onnx.save(model, out / "model.fp32.onnx")
    entry.update(sha256=sha256_file(out / "model.fp32.onnx"), bytes=(out / "model.fp32.onnx").stat().st_size)
    manifest.update(graphs=[entry], default_graph="model.fp32.onnx")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@LHRNET
def test_a_graph_that_behaves_as_declared_runs(family_bundle, tmp_path):
    bundle = _fake_bundle(family_bundle, tmp_path / "fake")
    with Session(bundle, threads=1) as s:
        result = s.run(np.full((3, 40, 80), 51, np.uint8))
    # 80 x 40 fills the canvas (scale 6.4, no padding): the mean is (3 x 51/255 + 1 for the mask) / 4 = 0.4
    assert result.scores == pytest.approx({"slot": 0.4, "part": 0.4}, rel=1e-3)
    assert result.angle == pytest.approx(0.4, rel=1e-3)  # a float32 mean of 2**19 values
    np.testing.assert_allclose([result.points[n] for n in POINTS], np.full((2, 2), 0.4 / 6.4), rtol=1e-3)


@LHRNET
def test_a_graph_returning_more_scores_than_declared_is_a_backend_error(family_bundle, tmp_path):
    bundle = _fake_bundle(family_bundle, tmp_path / "fake", scores=3)
    with Session(bundle, threads=1) as s:  # the graph's axis is dynamic: only a run shows the size
        with pytest.raises(BackendError, match=r"returned 'scores' of shape \(2, 3\) for a batch of 2; the "
                                               r"manifest declares \['batch', 2\]"):
            s.run([np.full((3, 40, 80), 51, np.uint8)] * 2)


@LHRNET
def test_a_graph_returning_nan_points_is_a_backend_error(family_bundle, tmp_path):
    bundle = _fake_bundle(family_bundle, tmp_path / "fake", nan=True)
    with Session(bundle, threads=1) as s:
        with pytest.raises(BackendError, match=r"non-finite 'points' for images\[0\], images\[1\]; expected finite"):
            s.run([np.full((3, 40, 80), 51, np.uint8)] * 2)


@LHRNET
def test_a_manifest_promising_another_point_count_than_its_graph(family_bundle_copy):
    path = family_bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["postprocess"]["points"] = ["slot", "part", "pin"]
    for entry in manifest["graphs"]:
        for spec in entry["outputs"] if entry["layer"] == "full" else ():
            if spec["name"] in ("points", "scores"):
                spec["shape"][1] = 3
    path.write_text(json.dumps(manifest))
    # Refused at load where the graph states its point axis, else at the first run: never a result.
    try:
        session = Session(family_bundle_copy, precision="fp32", threads=1)
    except ModelLoadError as exc:
        assert re.search(r"disagree on outputs: the manifest declares 'points' \(batch, 3, 2\)", str(exc)), exc
        return
    with session, pytest.raises(BackendError, match=r"returned 'points' of shape \(1, 2, 2\) for a batch of 1; "
                                                    r"the manifest declares \['batch', 3, 2\]"):
        session.run(np.full((3, 40, 80), 51, np.uint8))
