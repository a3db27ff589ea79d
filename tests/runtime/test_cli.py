"""``python -m runtime.infer`` and ``python -m runtime.evaluate`` end to end, and ``runtime.evaluate``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import runtime
from runtime import InvalidInputError, Session
from runtime import _cli, _evaluate
from runtime._imageio import write_png, write_tiff

H, W = 976, 176  # the strip image type

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def inputs(tmp_path, strips) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, strip in enumerate(strips[:2]):
        write_tiff(folder / f"strip_{i}.tiff", np.concatenate([strip, np.zeros((1, H, W), np.float32)]))
    write_png(folder / "strip_png.png", strips[2].astype(np.uint8))
    (folder / "broken.tiff").write_bytes(b"II*\x00 not really a tiff")
    return folder


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return {Path(row["file"]).name: row for row in csv.DictReader(handle)}


def test_infer_cli_with_a_bad_file(bundle, inputs, strips, tmp_path, capsys):
    extra = tmp_path / "extra.tiff"
    write_tiff(extra, strips[3])
    out = tmp_path / "out"
    code = _cli.main([str(bundle), str(inputs), str(extra), "--out", str(out), "--visualize", "--no-progress",
                      "--threshold", "0.4", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.tiff" in captured.err and "wrote" in captured.out
    rows = _summary(out)
    assert set(rows) == {"broken.tiff", "strip_0.tiff", "strip_1.tiff", "strip_png.png", "extra.tiff"}
    assert rows["broken.tiff"]["status"] == "error" and "broken.tiff" in rows["broken.tiff"]["error"]
    with Session(bundle, threshold=0.4) as s:
        expected = s.run(strips[0])
    for stem in ("strip_0", "strip_1", "strip_png", "extra"):
        assert rows[next(k for k in rows if k.startswith(stem + "."))]["status"] == "ok"
        heatmap = tifffile.imread(out / f"{stem}_heatmap.tiff")
        assert heatmap.shape == (H, W) and heatmap.dtype == np.float32
        assert Image.open(out / f"{stem}_overlay.png").size == (W, H)
        panels = Image.open(out / f"{stem}_panels.png")
        assert panels.size[0] == 8 * W + 7 * 4 and panels.size[1] > H
    np.testing.assert_allclose(tifffile.imread(out / "strip_0_heatmap.tiff"), expected.heatmap, atol=1e-6)
    assert float(rows["strip_0.tiff"]["score"]) == pytest.approx(expected.score, abs=1e-5)
    assert int(rows["strip_0.tiff"]["defect_pixels"]) == expected.defect_pixels
    assert not (out / "broken_heatmap.tiff").exists()


def test_infer_cli_subprocess_all_good(bundle, strips, tmp_path):
    image = tmp_path / "a.tiff"
    write_tiff(image, strips[0])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "runtime.infer", str(bundle), str(image), "--out", str(out),
                           "--precision", "int8", "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "int8" in proc.stdout and str(out) in proc.stdout
    assert (out / "a_heatmap.tiff").is_file() and (out / "a_overlay.png").is_file()
    assert not (out / "a_panels.png").exists()


def test_infer_cli_bad_model(tmp_path, capsys):
    assert _cli.main([str(tmp_path / "none"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "model not found" in capsys.readouterr().err


def test_evaluate_function(bundle, tiny_dataset):
    result = runtime.evaluate(bundle, tiny_dataset)
    assert result["images"] == 5
    assert 0.0 <= result["image_auroc"] <= 1.0 and 0.5 < result["pixel_auroc"] <= 1.0
    assert result["ms_per_image"] > 0 and result["ms_p90"] >= result["ms_median"] > 0
    assert (result["backend"], result["precision"]) == ("onnxruntime", "fp32")
    with Session(bundle, precision="int8") as s:
        again = runtime.evaluate(s, tiny_dataset)
        assert not s.closed  # a session passed in stays the caller's
    assert again["precision"] == "int8"


def test_evaluate_needs_a_split(bundle, tmp_path):
    with pytest.raises(InvalidInputError, match="no 'test' split"):
        runtime.evaluate(bundle, tmp_path)


def test_evaluate_cli_table(bundle, tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_evaluate, "is_available", lambda b: b.value != "openvino")  # as if not installed
    rows = tmp_path / "rows.json"
    code = _evaluate.main([str(bundle), str(tiny_dataset), "--backends", "onnxruntime,openvino",
                           "--precisions", "fp32,int8", "--json", str(rows), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("onnxruntime  fp32") for line in lines)
    assert any(line.startswith("onnxruntime  int8") for line in lines)
    assert "skipped openvino: not installed (pip install 'edge-vision-sdk[openvino]')" in out
    assert [r["precision"] for r in json.loads(rows.read_text())] == ["fp32", "int8"]


@pytest.mark.openvino
def test_evaluate_cli_subprocess_openvino(bundle, tiny_dataset):
    proc = subprocess.run([sys.executable, "-m", "runtime.evaluate", str(bundle), str(tiny_dataset),
                           "--backend", "openvino", "--precision", "fp32", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "openvino" in proc.stdout and "pixel_auroc" in proc.stdout
