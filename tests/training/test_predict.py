"""``python -m training.predict``: a checkpoint run in PyTorch writes what ``runtime.infer`` writes for its bundle."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from runtime import _cli
from runtime.core import get_family, write_png, write_tiff
from runtime.families.brn import TRUTH_COLOUR
from training import predict
from training.smoke import export_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fp32_bundle(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny brn checkpoint's full-image graph in FP32 (the bundle ``runtime.infer`` runs)."""
    return export_tiny(tiny_checkpoint, tmp_path_factory.mktemp("predict") / "bundle", layers=("full",)).bundle


@pytest.fixture(scope="module")
def inputs(tiny_dataset, tmp_path_factory) -> list[Path]:
    """A folder of defect images with masks (the dataset's), a good image, a PNG and an image of the wrong size."""
    extra = tmp_path_factory.mktemp("extra")
    image = tifffile.imread(next((tiny_dataset / "test" / "good").glob("*.tiff")))
    write_png(extra / "as_png.png", np.clip(np.round(image[:3]), 0, 255).astype(np.uint8))
    write_tiff(extra / "small.tiff", np.zeros((3, 64, 64), np.float32))
    defects = next(p for p in (tiny_dataset / "test").iterdir() if p.name != "good")
    return [defects, next((tiny_dataset / "test" / "good").glob("*.tiff")), extra]


def _rows(out: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(out / "summary.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {row["file"]: row for row in reader}
        return list(reader.fieldnames or []), rows


def test_predict_writes_what_infer_writes_for_the_bundle(tiny_checkpoint, fp32_bundle, inputs, tmp_path, capsys):
    torch_out, onnx_out = tmp_path / "pth", tmp_path / "onnx"
    args = [*map(str, inputs), "--visualize", "--no-progress"]
    assert predict.main([str(tiny_checkpoint), *args, "--out", str(torch_out)]) == 1  # small.tiff fails in both
    printed = capsys.readouterr()
    assert "pytorch fp32" in printed.out and "small.tiff" in printed.err and "next: python -m export.build" in printed.out
    assert _cli.main([str(fp32_bundle), *args, "--out", str(onnx_out), "--precision", "fp32"]) == 1

    names = sorted(p.name for p in torch_out.iterdir())
    assert names == sorted(p.name for p in onnx_out.iterdir())
    assert any(n.endswith("_panels.png") for n in names) and "summary.csv" in names
    (torch_fields, torch_rows), (onnx_fields, onnx_rows) = _rows(torch_out), _rows(onnx_out)
    assert torch_fields == onnx_fields and set(torch_rows) == set(onnx_rows)
    for name, row in torch_rows.items():
        other = onnx_rows[name]
        assert (row["status"], row["outputs"]) == (other["status"], other["outputs"]), name
    small = torch_rows[str(inputs[2] / "small.tiff")]
    assert small["status"] == "error" and "64x64" in small["error"]
    heatmaps = [p.name for p in torch_out.glob("*_heatmap.tiff")]
    assert len(heatmaps) == sum(row["status"] == "ok" for row in torch_rows.values()) >= 4
    for name in heatmaps:
        ours, theirs = tifffile.imread(torch_out / name), tifffile.imread(onnx_out / name)
        assert ours.shape == theirs.shape and float(np.abs(ours - theirs).max()) < 1e-4, name
    for row in (row for row in torch_rows.values() if row["status"] == "ok"):
        other, heatmap = onnx_rows[row["file"]], tifffile.imread(torch_out / row["outputs"].split()[0])
        assert abs(float(row["score"]) - float(other["score"])) < 1e-4
        # Only a pixel within the two graphs' difference of the threshold (0.5) may count in one and not the other.
        at_threshold = int(np.count_nonzero(np.abs(heatmap - 0.5) < 1e-4))
        assert abs(int(row["defect_pixels"]) - int(other["defect_pixels"])) <= at_threshold, row["file"]


def test_every_family_predicts_what_its_bundle_infers(family_name, family_run, family_dataset, tmp_path):
    bundle = export_tiny(family_run.best, tmp_path / "bundle", layers=("full",)).bundle
    part = get_family(family_name)
    images = [str(item.image) for item in part.labelled_images(family_dataset, part.evaluation_split)[:3]]
    torch_out, onnx_out = tmp_path / "pth", tmp_path / "onnx"
    assert predict.main([str(family_run.best), *images, "--out", str(torch_out), "--visualize", "--no-progress"]) == 0
    assert _cli.main([str(bundle), *images, "--out", str(onnx_out), "--visualize", "--no-progress",
                      "--precision", "fp32"]) == 0
    assert sorted(p.name for p in torch_out.iterdir()) == sorted(p.name for p in onnx_out.iterdir())
    (fields, ours), (their_fields, theirs) = _rows(torch_out), _rows(onnx_out)
    assert fields == their_fields and list(ours) == list(theirs) == images
    values = [f for f in fields if f not in ("file", "latency_ms", "outputs", "status", "error")]
    assert values, "the family's own columns"
    for image in images:
        assert ours[image]["outputs"] == theirs[image]["outputs"]
        for field in values:
            if "." in ours[image][field]:  # counts of pixels over a threshold: see the brn test below
                assert abs(float(ours[image][field]) - float(theirs[image][field])) < 1e-3, (image, field)
    for tiff in torch_out.glob("*.tiff"):
        assert float(np.abs(tifffile.imread(tiff) - tifffile.imread(onnx_out / tiff.name)).max()) < 1e-4, tiff.name


def test_dataset_images_have_their_ground_truth_outlined(tiny_checkpoint, inputs, tmp_path):
    defects = inputs[0]
    image = sorted(defects.glob("*.tiff"))[0]
    good = tmp_path / "good.tiff"  # a stem of its own (the dataset's good and defect images share theirs)
    good.write_bytes(inputs[1].read_bytes())
    out = tmp_path / "out"
    assert predict.main([str(tiny_checkpoint), str(image), str(good), "--out", str(out), "--visualize",
                         "--no-progress"]) == 0
    truth = tifffile.imread(defects.parent.parent / "ground_truth" / defects.name / f"{image.stem}_mask.tiff")
    assert np.squeeze(truth).any(), "the tiny dataset's defect image has a defect"
    for stem, outlined in ((image.stem, True), (good.stem, False)):
        figure = np.asarray(Image.open(out / f"{stem}_panels.png").convert("RGB"))
        height, width = truth.shape[-2:]
        for index in (0, 6):  # Target and the heatmap
            panel = figure[16:16 + height, index * (width + 4):index * (width + 4) + width]
            green = np.all(panel == np.array(TRUTH_COLOUR, np.uint8), axis=-1)
            assert green.any() == outlined, f"{stem} panel {index}: an outline only for a defect image"


def test_the_model_runs_an_array_like_a_session(tiny_checkpoint, fp32_bundle, inputs):
    import runtime

    image = tifffile.imread(inputs[1])
    model = predict.load_model(tiny_checkpoint, threshold=0.3)
    ours = model.run(image)
    with runtime.Session(fp32_bundle, precision="fp32", threshold=0.3) as session:
        theirs = session.run(image)
    assert type(ours) is type(theirs) and ours.source == theirs.source == "array"
    assert ours.threshold == 0.3 and abs(ours.score - theirs.score) < 1e-4
    assert float(np.abs(ours.heatmap - theirs.heatmap).max()) < 1e-4


@pytest.mark.parametrize("args, match", [
    (["--mode", "tiles"], r"--mode 'tiles': family 'brn' has the full-image modes \['stitched', 'fcn'\]"),
    (["--device", "gpu7"], r"--device must be auto, cpu, cuda or cuda:N, got 'gpu7'"),
    (["--threads", "0"], r"--threads must be at least 1, got 0"),
], ids=["mode", "device", "threads"])
def test_bad_options_exit_2_before_any_image(tiny_checkpoint, inputs, tmp_path, capsys, args, match):
    import re

    out = tmp_path / "out"
    assert predict.main([str(tiny_checkpoint), str(inputs[1]), "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(match, err), err
    assert list(out.iterdir()) == []


def test_a_missing_checkpoint_or_image_and_an_unwritable_out(tiny_checkpoint, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict.main([str(tmp_path / "none.pth"), str(inputs[1]), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert predict.main([str(tiny_checkpoint), str(tmp_path / "gone.tiff"), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "gone.tiff" in err
    _, rows = _rows(out)
    gone = rows[str(tmp_path / "gone.tiff")]
    assert gone["status"] == "error" and "gone.tiff" in gone["error"]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert predict.main([str(tiny_checkpoint), str(inputs[1]), "--out", str(blocker)]) == 2
    assert "output folder" in capsys.readouterr().err


def test_cli_subprocess_help_and_a_bad_checkpoint(tmp_path):
    helped = subprocess.run([sys.executable, "-m", "training.predict", "--help"], cwd=ROOT, capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "runtime.infer" in helped.stdout and "--visualize" in helped.stdout
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "training.predict", str(broken), str(tmp_path), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot read checkpoint" in proc.stderr and "Traceback" not in proc.stderr
