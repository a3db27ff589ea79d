"""Ctrl-C and bad usage in ``python -m runtime.infer`` and ``python -m runtime.evaluate``.

Exit codes: 0 success, 1 some inputs failed, 2 bad usage detected before any work,
130 interrupted. On Ctrl-C both CLIs end without a traceback, write the summary of
what was done (infer: ``summary.csv``; evaluate: the table and ``--json`` of the
combinations measured in full) and leave no output file the summary does not list.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import _cli, _evaluate
from runtime._imageio import write_tiff

ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


def _summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _unlisted(out: Path) -> set[str]:
    """Files in ``out`` that summary.csv does not list (temporary files included)."""
    listed = {name for row in _summary(out) for name in row["outputs"].split()} | {"summary.csv"}
    return {p.name for p in out.iterdir()} - listed


@pytest.fixture()
def folder(tmp_path, strips) -> Path:
    """30 strips: enough for an interrupt to land in the middle of a run."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(30):
        write_tiff(images / f"s{i:02d}.tiff", strips[i % len(strips)])
    return images


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the CLI ended (code {proc.returncode}) before it could be interrupted: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the CLI never reached the moment to interrupt it")
        time.sleep(0.02)


# -- runtime.infer ---------------------------------------------------------------------------------
@posix_only
def test_infer_sigint_writes_the_summary_and_exits_130(bundle, folder, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.infer", str(bundle), str(folder), "--out", str(out),
                             "--visualize", "--no-progress", "--threads", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # s01's first file: s00 is done (and in the summary); the signal may land between s01's files.
        _wait_for(lambda: (out / "s01_heatmap.tiff").exists(), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted:" in err
    rows = _summary(out)
    assert 1 <= len(rows) < 30 and all(r["status"] == "ok" for r in rows)
    assert _unlisted(out) == set()


def test_infer_ctrl_c_between_two_files_of_an_image_removes_them(bundle, folder, tmp_path, monkeypatch, capsys):
    # Ctrl-C after the heatmap of the 2nd image was written, before its overlay: the summary does
    # not list that image, so its heatmap must go too (it stayed, looking like an output).
    from runtime._registry import get_family

    family = type(get_family(json.loads((bundle / "manifest.json").read_text())["family"]))
    real, calls = family.write_outputs, []

    def interrupted_second(self, result, image, out_dir, stem, *, visualize):
        calls.append(stem)
        if len(calls) == 2:
            (out_dir / f"{stem}_heatmap.tiff").write_bytes(b"written before the interrupt")
            raise KeyboardInterrupt
        return real(self, result, image, out_dir, stem, visualize=visualize)

    monkeypatch.setattr(family, "write_outputs", interrupted_second)
    out = tmp_path / "out"
    assert _cli.main([str(bundle), str(folder), "--out", str(out), "--no-progress", "--threads", "1"]) == 130
    assert [Path(r["file"]).name for r in _summary(out)] == ["s00.tiff"]
    assert _unlisted(out) == set() and not (out / "s01_heatmap.tiff").exists()
    assert "interrupted: 1 image(s) processed, 0 failed, 29 not started" in capsys.readouterr().err


def test_infer_ctrl_c_while_loading_exits_130_without_a_traceback(bundle, folder, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "Session", interrupted)
    out = tmp_path / "out"
    assert _cli.main([str(bundle), str(folder), "--out", str(out), "--no-progress"]) == 130
    assert "interrupted while loading the model" in capsys.readouterr().err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_infer_summary_that_cannot_be_written(bundle, strips, tmp_path, monkeypatch, capsys, error):
    # A second Ctrl-C while the summary is written, or the folder filling up: a message, no traceback.
    image = tmp_path / "a.tiff"
    write_tiff(image, strips[0])

    def failing(tmp, fields, rows):
        Path(tmp).write_text("half")
        raise OSError(28, "No space left on device") if error is OSError else KeyboardInterrupt

    monkeypatch.setattr(_cli, "_write_csv", failing)
    out = tmp_path / "out"
    code = _cli.main([str(bundle), str(image), "--out", str(out), "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == (130 if error is KeyboardInterrupt else 1)
    assert ("not written" if error is KeyboardInterrupt else "No space left on device") in err
    assert sorted(p.name for p in out.iterdir()) == ["a_heatmap.tiff", "a_overlay.png"]  # no temporary file


@pytest.mark.parametrize("args, match", [
    (["--threads", "1025"], r"threads must be an integer in 1\.\.1024"),  # 100000 never finished loading
    (["--threads", "0"], r"threads must be an integer in 1\.\.1024"),
    (["--precision", "fp64"], r"unsupported precision 'fp64'"),
    (["--backend", "tensorflow"], r"unsupported backend 'tensorflow'"),
    (["--threshold", "nan"], r"threshold must be a number in 0\.\.1"),
], ids=["threads-huge", "threads-0", "precision", "backend", "threshold-nan"])
def test_infer_bad_options_exit_2_before_any_image(bundle, folder, tmp_path, capsys, args, match):
    import re

    out = tmp_path / "out"
    assert _cli.main([str(bundle), str(folder), "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(match, err) and "Traceback" not in err
    assert list(out.iterdir()) == []


# -- runtime.evaluate ------------------------------------------------------------------------------
@pytest.fixture()
def dataset(tiny_dataset, tmp_path) -> Path:
    """The tiny dataset's test split, repeated to 30 images."""
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    for split in ("test",):
        images = sorted((root / split).rglob("*.tiff"))
        for k in range(30 - len(images)):
            source = images[k % len(images)]
            copy = source.with_name(f"{source.stem}_{k}{source.suffix}")
            shutil.copy(source, copy)
            mask = root / "ground_truth" / source.parent.name / f"{source.stem}_mask.tiff"
            if mask.exists():
                shutil.copy(mask, mask.with_name(f"{copy.stem}_mask.tiff"))
    return root


@posix_only
def test_evaluate_sigint_exits_130_without_a_traceback(bundle, dataset, tmp_path):
    rows = tmp_path / "rows.json"
    # -c rather than -m: "ready" marks the end of the imports (a Ctrl-C during Python's own start-up
    # is Python's), so the signal lands while the CLI loads or evaluates.
    code = ("import sys; from runtime._evaluate import main; print('ready', flush=True); "
            f"sys.exit(main([{str(bundle)!r}, {str(dataset)!r}, '--backends', 'onnxruntime', '--precisions', "
            f"'fp32,fp16,int8', '--threads', '1', '--no-progress', '--json', {str(rows)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        assert proc.poll() is None, "evaluate ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in out + err
    if rows.exists():  # interrupted after loading: the rows measured in full, possibly none
        assert isinstance(json.loads(rows.read_text()), list)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_evaluate_ctrl_c_reports_the_combinations_measured(bundle, tiny_dataset, tmp_path, monkeypatch, capsys):
    real, calls = _evaluate._evaluate, []

    def interrupted_second(*args, **kwargs):
        calls.append(kwargs["precision"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_evaluate, "_evaluate", interrupted_second)
    rows = tmp_path / "rows.json"
    code = _evaluate.main([str(bundle), str(tiny_dataset), "--backends", "onnxruntime", "--precisions",
                           "fp32,int8", "--threads", "1", "--no-progress", "--json", str(rows)])
    out = capsys.readouterr().out
    assert code == 130
    assert any(line.startswith("onnxruntime  fp32") for line in out.splitlines())
    assert "interrupted during onnxruntime/int8: it is not in the table" in out
    assert [r["precision"] for r in json.loads(rows.read_text())] == ["fp32"]


def test_evaluate_ctrl_c_while_reading_the_model(bundle, tiny_dataset, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_evaluate, "_ModelSource", interrupted)
    assert _evaluate.main([str(bundle), str(tiny_dataset), "--no-progress"]) == 130
    assert "interrupted before anything was evaluated" in capsys.readouterr().err


def _no_split(tmp: Path, dataset: Path) -> list[str]:
    return [str(tmp / "nowhere")]


def _wrong_split(tmp: Path, dataset: Path) -> list[str]:
    return [str(dataset), "--split", "valid"]


@pytest.mark.parametrize("args, match", [
    (_no_split, r"no 'test' split in"),
    (_wrong_split, r"no 'valid' split in"),
    (lambda tmp, ds: [str(ds), "--backends", ","], r"no backend given"),
    (lambda tmp, ds: [str(ds), "--precisions", " , "], r"no precision given"),
    (lambda tmp, ds: [str(ds), "--threads", "1025"], r"threads must be an integer in 1\.\.1024"),
], ids=["no-dataset", "no-split", "no-backend", "no-precision", "threads-huge"])
def test_evaluate_bad_usage_exits_2_before_loading(bundle, tiny_dataset, tmp_path, monkeypatch, capsys, args, match):
    # These were exit code 1 after one model load per backend x precision.
    import re

    def never(*a, **k):
        raise AssertionError("evaluated despite bad usage")

    monkeypatch.setattr(_evaluate, "_evaluate", never)
    assert _evaluate.main([str(bundle), *args(tmp_path, tiny_dataset), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(match, err) and "Traceback" not in err
