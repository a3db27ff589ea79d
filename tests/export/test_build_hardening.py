"""The export refuses bad input before any work and never deletes or leaves behind what it should not.

Regression tests of the hardening issue: ``--force`` replaces only a previous
bundle, SIGTERM cleans up, malformed checkpoint fields are ModelLoadErrors,
two exports racing to one ``--out`` cannot both succeed, and the CLI answers
bad input with exit code 2 and a one-line message.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from export import BuildOptions, build
from export import _build
from runtime import InvalidInputError, ModelLoadError
from runtime.core import read_manifest, sha256_file
from training.checkpoint import build_from_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path) -> list[str]:
    """What an export may leave next to its --out when it fails: staging, trash, lock."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  any(tag in p.name for tag in (".partial-", ".old-", ".lock")))


def _fp32(checkpoint: Path, out: Path, **kw) -> BuildOptions:
    return BuildOptions(checkpoint=checkpoint, out=out, precisions=("fp32",), parity_images=2, **kw)


# -- 1. --force replaces a previous bundle and nothing else -----------------------------------------
def _folder_of_other_things(tmp: Path, ck: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return tmp / "out"


def _bundle_with_an_extra_file(tmp: Path, ck: Path) -> Path:
    out = tmp / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "model.fp32.onnx").write_bytes(b"x")
    (out / "holiday.jpg").write_bytes(b"y")
    return out


def _bundle_with_a_subfolder(tmp: Path, ck: Path) -> Path:
    out = tmp / "out"
    (out / "runs").mkdir(parents=True)
    (out / "manifest.json").write_text("{}")
    return out


def _checkpoint_folder(tmp: Path, ck: Path) -> Path:
    return ck.parent


def _checkpoint_grandparent(tmp: Path, ck: Path) -> Path:
    return ck.parent.parent


def _checkpoint_folder_as_bundle(tmp: Path, ck: Path) -> Path:
    # Even a folder that looks like a bundle is not replaced when it holds the checkpoint.
    (ck.parent / "manifest.json").write_text("{}")
    return ck.parent / "sub" / ".."


def _the_checkpoint_itself(tmp: Path, ck: Path) -> Path:
    return ck


def _a_file(tmp: Path, ck: Path) -> Path:
    (tmp / "out").write_text("not a folder")
    return tmp / "out"


@pytest.mark.parametrize(("make", "match"), [
    (_folder_of_other_things, "has no manifest.json; refusing to delete it"),
    (_bundle_with_an_extra_file, r"also holds \['holiday.jpg'\]; refusing to delete it"),
    (_bundle_with_a_subfolder, r"also holds \['runs'\]; refusing to delete it"),
    (_checkpoint_folder, "holds the checkpoint"),
    (_checkpoint_grandparent, "holds the checkpoint"),
    (_checkpoint_folder_as_bundle, "holds the checkpoint"),
    (_the_checkpoint_itself, "holds the checkpoint"),
    (_a_file, "exists and is not a directory"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_force_never_deletes_anything_but_a_previous_bundle(tiny_checkpoint, tmp_path, make, match):
    ck = tmp_path / "run" / "ck" / "best.pth"
    ck.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, ck)
    out = make(tmp_path, ck)
    (ck.parent / "log.txt").write_text("training log")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(InvalidInputError, match=match):
        build(_fp32(ck, out, force=True))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not _leftovers(Path(out).resolve().parent)


def test_cli_force_refuses_the_checkpoint_folder(tiny_checkpoint, tmp_path, capsys):
    ck = tmp_path / "best.pth"
    shutil.copy(tiny_checkpoint, ck)
    code = _build.main(["--checkpoint", str(ck), "--out", str(tmp_path), "--force", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "holds the checkpoint" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["best.pth"] and sha256_file(ck) == sha256_file(tiny_checkpoint)


# -- 2. SIGTERM cleans up ---------------------------------------------------------------------------------
def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"export ended (code {proc.returncode}) before the moment to interrupt it: "
                        f"{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("export never reached the moment to interrupt it")
        time.sleep(0.05)


def _start_export(checkpoint: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    """``python -m export.build`` (FP32 and INT8) into tmp_path/work/b, with its own TMPDIR; the process and both folders."""
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "export.build", "--checkpoint", str(checkpoint), "--out", str(work / "b"),
         "--precisions", "fp32,int8", "--parity-images", "2", "--calibration-synthetic", "2", "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, work, tmpdir


@pytest.mark.parametrize("moment", ["staging", "quantizing"])
def test_sigterm_cleans_up_staging_and_quantizer_folders(tiny_checkpoint, tmp_path, moment):
    proc, work, tmpdir = _start_export(tiny_checkpoint, tmp_path)
    try:
        if moment == "staging":
            _wait_for(lambda: any(".partial-" in p.name for p in work.iterdir()), proc)
        else:
            _wait_for(lambda: any(p.name.startswith("quant-") for p in tmpdir.iterdir()), proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert os.listdir(work) == [], "no bundle, staging folder or lock file may be left"
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith(("quant-", "ort.quant"))]


def test_sigterm_handler_is_restored_after_build(tiny_checkpoint, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    build(_fp32(tiny_checkpoint, tmp_path / "b"))
    with pytest.raises(InvalidInputError):
        build(_fp32(tiny_checkpoint, tmp_path / "b"))
    assert signal.getsignal(signal.SIGTERM) is before


# -- 3. malformed checkpoint fields ---------------------------------------------------------------------
MALFORMED = [
    ({"arch": "oops"}, r"field 'arch' is 'oops'; expected a dict"),
    ({"arch": {"base_width": "x"}}, r"field 'arch' .*base_width.* is not a valid brn architecture"),
    ({"arch": {"unknown_key": 1}}, r"arch has unknown keys \['unknown_key'\]"),
    ({"model_state_dict": [1, 2]}, r"field 'model_state_dict' is list; expected a dict"),
    ({"model_state_dict": {"conv.weight": "x"}},
     r"weights do not fit the brn network .*\(checkpoint field 'model_state_dict'\)"),
    ({"family": 3}, r"field 'family' is 3; expected a family name"),
    ({"family": ["brn"]}, r"field 'family' is \['brn'\]; expected a family name"),
    ({"epoch": "12"}, r"field 'epoch' is '12'; expected an integer"),
    ({"epoch": True}, r"field 'epoch' is True; expected an integer"),
    ({"seed": 1.5}, r"field 'seed' is 1.5; expected an integer"),
    ({"metrics": [0.5]}, r"field 'metrics' is \[0.5\]; expected a dict"),
]
MALFORMED_IDS = ["arch-str", "arch-bad-value", "arch-unknown-key", "state-list", "state-values", "family-int",
                 "family-list", "epoch-str", "epoch-bool", "seed-float", "metrics-list"]


@pytest.mark.parametrize(("changes", "match"), MALFORMED, ids=MALFORMED_IDS)
def test_malformed_checkpoint_fields_fail_the_export_cleanly(tiny_checkpoint, tmp_path, changes, match):
    data = torch.load(tiny_checkpoint, weights_only=True)
    data.update(changes)
    ck = tmp_path / "bad.pth"
    torch.save(data, ck)
    with pytest.raises(ModelLoadError, match=match):
        build(_fp32(ck, tmp_path / "b"))
    assert sorted(os.listdir(tmp_path)) == ["bad.pth"]


@pytest.mark.parametrize(("changes", "match"), MALFORMED, ids=MALFORMED_IDS)
def test_malformed_checkpoint_fields_fail_build_from_checkpoint(tiny_checkpoint, changes, match):
    data = torch.load(tiny_checkpoint, weights_only=True)
    data.update(changes)
    with pytest.raises(ModelLoadError, match=match):
        build_from_checkpoint(data)


def test_build_from_checkpoint_rejects_a_non_dict():
    with pytest.raises(ModelLoadError, match="checkpoint is a list, expected a dict"):
        build_from_checkpoint([])


# -- 4. racing exports -------------------------------------------------------------------------------------
def test_two_exports_racing_to_one_out_cannot_both_succeed(tiny_checkpoint, tmp_path, monkeypatch):
    # Both exports pass validation while out does not exist yet (the barrier makes
    # that certain); the publish lock must then let exactly one of them write out.
    barrier = threading.Barrier(2, timeout=60)
    validate = _build._validate

    def validate_then_wait(options):
        validate(options)
        barrier.wait()

    monkeypatch.setattr(_build, "_validate", validate_then_wait)
    out = tmp_path / "b"
    results: list[object] = [None, None]

    def export(i: int) -> None:
        try:
            results[i] = build(_fp32(tiny_checkpoint, out))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=export, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    successes = [r for r in results if isinstance(r, _build.BuildResult)]
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(successes) == 1 and len(failures) == 1, results
    assert isinstance(failures[0], InvalidInputError) and "already exists" in str(failures[0])
    manifest = read_manifest(out)
    for entry in manifest.graphs:
        assert sha256_file(out / entry.file) == entry.sha256
    assert sorted(os.listdir(tmp_path)) == ["b"], "no staging folder or lock file may be left"


def test_a_stale_lock_file_does_not_block_an_export(tiny_checkpoint, tmp_path):
    # A lock file left by a killed export (SIGKILL) is not held by anyone: flock takes it.
    (tmp_path / ".b.lock").write_text("")
    build(_fp32(tiny_checkpoint, tmp_path / "b"))
    assert sorted(os.listdir(tmp_path)) == ["b"]


# -- 5. bad input on the command line: exit 2, a message, no traceback, nothing written ------------------------
def _corrupt_calibration(tmp: Path) -> list[str]:
    (tmp / "cal").mkdir()
    (tmp / "cal" / "001.png").write_bytes(b"not a png")
    return ["--calibration", str(tmp / "cal")]


def _calibration_file(tmp: Path) -> list[str]:
    (tmp / "cal.png").write_bytes(b"x")
    return ["--calibration", str(tmp / "cal.png")]


def _checkpoint_directory(tmp: Path) -> list[str]:
    (tmp / "ck.pth").mkdir()
    return ["--checkpoint", str(tmp / "ck.pth")]


def _checkpoint_fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "ck.pth")
    return ["--checkpoint", str(tmp / "ck.pth")]


def _out_inside_a_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["--out", str(tmp / "afile" / "b")]


def _out_in_an_unwritable_folder(tmp: Path) -> list[str]:
    # /proc accepts no new files, even from root (chmod would not stop root).
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    return ["--out", "/proc/edge-sdk-test-bundle"]


BAD_INPUT = [
    (lambda tmp: ["--parity-images", "0"], r"--parity-images .* must be an integer of at least 2, got 0"),
    (lambda tmp: ["--parity-images", "-3"], r"got -3"),
    (lambda tmp: ["--calibration-synthetic", "0"], r"--calibration-synthetic must be an integer of at least 1"),
    (lambda tmp: ["--opset", "10"], r"--opset must be an integer in 11\.\.\d+, got 10"),
    (lambda tmp: ["--opset", "99"], r"--opset must be an integer in 11\.\.\d+, got 99"),
    (lambda tmp: ["--max-metric-drop", "nan"], r"--max-metric-drop must be a finite number .* got 'nan'"),
    (lambda tmp: ["--max-metric-drop", "inf"], r"--max-metric-drop must be a finite number .* got 'inf'"),
    (lambda tmp: ["--max-metric-drop", "pixel_auroc=x"], r"metric=number pairs .* got 'pixel_auroc=x'"),
    (lambda tmp: ["--max-metric-drop", "mae=0.5"], r"names \['mae'\], which family 'brn' does not guard"),
    (lambda tmp: ["--seed", "-1"], r"--seed must be an integer of at least 0"),
    (_corrupt_calibration, r"cannot read image .*001.png"),
    (_calibration_file, r"calibration folder not found"),
    (_checkpoint_directory, r"is not a regular file; expected a .pth file"),
    (_checkpoint_fifo, r"is not a regular file; expected a .pth file"),
    (_out_inside_a_file, r"lies inside .*afile, which is not a directory"),
    (_out_in_an_unwritable_folder, r"cannot write to /proc"),
]
BAD_INPUT_IDS = ["parity-0", "parity-negative", "calibration-synthetic-0", "opset-low", "opset-high", "drop-nan",
                 "drop-inf", "drop-not-a-number", "drop-unknown-metric", "seed-negative", "corrupt-calibration-image", "calibration-is-a-file",
                 "checkpoint-is-a-directory", "checkpoint-is-a-fifo", "out-inside-a-file", "out-unwritable"]


@pytest.mark.parametrize(("args", "match"), BAD_INPUT, ids=BAD_INPUT_IDS)
def test_cli_bad_input_exits_2_with_a_message_and_writes_nothing(tiny_checkpoint, tmp_path, capsys, args, match):
    import re

    extra = args(tmp_path)
    argv = ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"), "--precisions", "fp32,int8",
            "--parity-images", "2", "--no-progress", *extra]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = _build.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and re.search(match, err), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- 6. Ctrl-C and failed checks on the command line -----------------------------------------------------
def test_sigint_cleans_up_and_exits_130_without_a_traceback(tiny_checkpoint, tmp_path):
    # Ctrl-C was a KeyboardInterrupt traceback (the clean-up itself ran); now a message and 130.
    proc, work, tmpdir = _start_export(tiny_checkpoint, tmp_path)
    try:
        _wait_for(lambda: any(p.name.startswith("quant-") for p in tmpdir.iterdir()), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: no bundle written" in err
    assert os.listdir(work) == [], "no bundle, staging folder or lock file may be left"
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith(("quant-", "ort.quant"))]


def test_cli_failed_check_exits_1_and_writes_nothing(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    # A graph that fails its checks is not bad usage (2): the options were fine and the work was done.
    from runtime import ExportError

    def fails(options, staging):
        (staging / "model.fp32.onnx").write_bytes(b"half")
        raise ExportError("model.fp32.onnx output 'output' differs from PyTorch by 0.1 (max abs)")

    monkeypatch.setattr(_build, "_build_into", fails)
    code = _build.main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: model.fp32.onnx output") and "Traceback" not in err
    assert os.listdir(tmp_path) == []
