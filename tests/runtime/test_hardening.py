"""Hardening: corrupt images, bad output locations, interrupted runs, output names, non-regular model files,
manifest strictness (the issue's items 1 to 5)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from runtime import InvalidInputError, ModelLoadError, Session
from runtime import _cli, _evaluate
from runtime._imageio import MAX_IMAGE_PIXELS, read_image, write_png, write_tiff
from runtime._manifest import MAX_MANIFEST_BYTES, parse_manifest, read_manifest

H, W = 976, 176
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero")


# -- corrupt files --------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(width: int, height: int) -> bytes:
    """A ~100-byte PNG that declares width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:600]


def _corrupt_files(folder: Path) -> dict[str, Path]:
    files = {"bomb.png": _bomb_png(100_000, 100_000), "truncated.jpg": _truncated_jpeg(),
             "random.png": np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def test_corrupt_images_raise_invalid_input(tmp_path):
    for name, path in _corrupt_files(tmp_path).items():
        with pytest.raises(InvalidInputError, match=name):
            read_image(path)


def test_decompression_bomb_states_the_pixel_limit(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(100_000, 100_000))  # above Pillow's own hard limit
    with pytest.raises(InvalidInputError, match=f"at most {MAX_IMAGE_PIXELS} pixels"):
        read_image(bomb)
    medium = tmp_path / "medium.png"
    medium.write_bytes(_bomb_png(10_000, 10_000))  # 100 Mpx: above ours, only a warning for Pillow
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as a user's -W error would: the warning must not escape
        with pytest.raises(InvalidInputError, match=f"declares 100000000 pixels; at most {MAX_IMAGE_PIXELS}"):
            read_image(medium)


@pytest.mark.parametrize("error", [struct.error("unpack requires a buffer"), EOFError(), MemoryError(),
                                   Image.DecompressionBombWarning("big"), SyntaxError("bad")])
def test_any_decoder_failure_is_invalid_input(tmp_path, monkeypatch, error):
    path = tmp_path / "image.png"
    write_png(path, np.zeros((8, 8, 3), np.uint8))

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", fail)
    with pytest.raises(InvalidInputError, match=f"image.png: {type(error).__name__}"):
        read_image(path)


def test_tiff_declaring_too_many_pixels(tmp_path, monkeypatch):
    path = tmp_path / "big.tiff"
    tifffile.imwrite(path, np.zeros((3, 64, 64), np.float32), photometric="minisblack")
    monkeypatch.setattr("runtime._imageio.MAX_IMAGE_PIXELS", 64 * 63)
    with pytest.raises(InvalidInputError, match="big.tiff declares 4096 pixels; at most 4032"):
        read_image(path)


def test_session_run_on_corrupt_images(bundle, tmp_path):
    with Session(bundle, threads=1) as session:
        for name, path in _corrupt_files(tmp_path).items():
            with pytest.raises(InvalidInputError, match=name):
                session.run(path)


def _summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_goes_on_after_corrupt_images(bundle, strips, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    _corrupt_files(folder)
    write_tiff(folder / "good.tiff", strips[0])
    out = tmp_path / "out"
    code = _cli.main([str(bundle), str(folder), "--out", str(out), "--no-progress", "--threads", "1"])
    assert code == 1
    rows = {Path(r["file"]).name: r for r in _summary(out)}
    assert set(rows) == {"bomb.png", "truncated.jpg", "random.png", "good.tiff"}
    assert rows["good.tiff"]["status"] == "ok" and (out / "good_heatmap.tiff").is_file()
    for name in ("bomb.png", "truncated.jpg", "random.png"):
        assert rows[name]["status"] == "error" and name in rows[name]["error"] and rows[name]["outputs"] == ""
    assert "3 input(s) failed" in capsys.readouterr().err


# -- output location and interrupts ---------------------------------------------------------------
def test_cli_out_is_a_file_exits_2_before_loading(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("a file")
    # The model does not exist either: the output folder is checked first, before any work.
    for out in (target, target / "sub"):
        assert _cli.main([str(tmp_path / "no-model"), str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and str(target) in err and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_cli_unwritable_out_exits_2(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert _cli.main([str(tmp_path / "no-model"), str(tmp_path), "--out", str(locked)]) == 2
        assert "not writable" in capsys.readouterr().err
        assert _cli.main([str(tmp_path / "no-model"), str(tmp_path), "--out", str(locked / "new")]) == 2
        assert "cannot create" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_evaluate_json_location_checked_before_evaluating(bundle, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("evaluated despite a bad --json")

    monkeypatch.setattr(_evaluate, "_evaluate", never)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for bad in (folder, tmp_path / "missing" / "rows.json", tmp_path / "file.txt" / "rows.json"):
        (tmp_path / "file.txt").write_text("x")
        assert _evaluate.main([str(bundle), str(tmp_path), "--backends", "onnxruntime", "--json", str(bad),
                               "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err


def test_cli_ctrl_c_writes_the_summary_and_exits_130(bundle, strips, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        write_tiff(folder / f"s{i}.tiff", strips[i])
    real, calls = _cli._process, []

    def interrupt_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_cli, "_process", interrupt_second)
    out = tmp_path / "out"
    assert _cli.main([str(bundle), str(folder), "--out", str(out), "--no-progress", "--threads", "1"]) == 130
    rows = _summary(out)
    assert [(Path(r["file"]).name, r["status"]) for r in rows] == [("s0.tiff", "ok")]
    assert "interrupted: 1 image(s) processed, 0 failed, 2 not started" in capsys.readouterr().err


# -- output names ---------------------------------------------------------------------------------
def test_unique_stems_are_stable_and_distinct():
    files = [Path("a/x.tiff"), Path("b/x.tiff"), Path("c/x_1.tiff"), Path("d/x.png"), Path("e/X.tiff")]
    assert _cli._unique_stems(files) == ["x", "x_2", "x_1", "x_3", "X_4"]
    assert _cli._unique_stems([Path("c/x_1.tiff"), Path("a/x.tiff"), Path("b/x.tiff")]) == ["x_1", "x", "x_2"]


def test_cli_outputs_belong_to_their_input(bundle, strips, tmp_path):
    inputs = {"a/x.tiff": strips[0], "b/x.tiff": None, "c/x_1.tiff": strips[1], "d/x.tiff": strips[2]}
    for name, strip in inputs.items():
        (tmp_path / name).parent.mkdir()
        if strip is None:
            (tmp_path / name).write_bytes(b"II*\x00 broken")
        else:
            write_tiff(tmp_path / name, strip)
    out = tmp_path / "out"
    code = _cli.main([str(bundle), *(str(tmp_path / n) for n in inputs), "--out", str(out), "--no-progress",
                      "--threads", "1"])
    assert code == 1
    rows = {str(Path(r["file"]).relative_to(tmp_path)): r for r in _summary(out)}
    expected = {"a/x.tiff": "x", "b/x.tiff": None, "c/x_1.tiff": "x_1", "d/x.tiff": "x_3"}
    with Session(bundle, threads=1) as session:
        for name, stem in expected.items():
            row = rows[name]
            if stem is None:
                assert row["status"] == "error" and row["outputs"] == ""
                continue
            assert row["outputs"].split() == [f"{stem}_heatmap.tiff", f"{stem}_overlay.png"]
            heatmap = tifffile.imread(out / f"{stem}_heatmap.tiff")
            np.testing.assert_allclose(heatmap, session.run(inputs[name]).heatmap, atol=1e-5)
    assert not (out / "x_2_heatmap.tiff").exists()  # the failed input's name stays unused


def test_cli_failed_write_leaves_no_unlisted_output(bundle, strips, tmp_path, monkeypatch):
    from runtime._registry import get_family

    folder = tmp_path / "images"
    folder.mkdir()
    for name, strip in (("x_1.tiff", strips[0]), ("x.tiff", strips[1])):
        write_tiff(folder / name, strip)
    family = get_family(json.loads((bundle / "manifest.json").read_text())["family"])
    real = type(family).write_outputs

    def fail_for_x(self, result, image, out_dir, stem, *, visualize):
        if stem != "x":
            return real(self, result, image, out_dir, stem, visualize=visualize)
        (out_dir / f"{stem}_heatmap.tiff").write_bytes(b"half")  # written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(family), "write_outputs", fail_for_x)
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    assert _cli.main([str(bundle), str(folder / "x_1.tiff"), str(folder / "x.tiff"), "--out", str(out),
                      "--no-progress", "--threads", "1"]) == 1
    rows = {Path(r["file"]).name: r for r in _summary(out)}
    assert rows["x.tiff"]["status"] == "error" and rows["x.tiff"]["outputs"] == ""
    listed = set(rows["x_1.tiff"]["outputs"].split())
    assert listed == {"x_1_heatmap.tiff", "x_1_overlay.png"}
    assert {p.name for p in out.iterdir() if p.is_file()} == listed | {"summary.csv"}


# -- model files that are not regular files -------------------------------------------------------
def _within(seconds: float, call):
    """call() in a thread; fail (instead of hanging the suite) if it does not return in time."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer within {seconds} s (a hang)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _replace_with(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@posix_only
@pytest.mark.parametrize("kind,expected", [("fifo", "FIFO"), ("zero", "character device")])
def test_non_regular_manifest_is_refused(bundle_copy, kind, expected):
    _replace_with(bundle_copy / "manifest.json", kind)
    with pytest.raises(ModelLoadError, match=f"manifest .*manifest.json is a {expected}.*; expected a regular file"):
        _within(20, lambda: Session(bundle_copy))


@posix_only
@pytest.mark.parametrize("kind,expected", [("fifo", "FIFO"), ("zero", "character device")])
def test_non_regular_graph_is_refused(bundle_copy, kind, expected):
    _replace_with(bundle_copy / "model.fp32.onnx", kind)
    with pytest.raises(ModelLoadError, match=f"graph .*model.fp32.onnx is a {expected}"):
        _within(20, lambda: Session(bundle_copy, precision="fp32"))


@posix_only
@pytest.mark.parametrize("kind,expected", [("fifo", "FIFO"), ("zero", "character device")])
def test_non_regular_lone_graph_is_refused(tmp_path, kind, expected):
    lone = tmp_path / "model.fp32.onnx"
    lone.write_bytes(b"")
    _replace_with(lone, kind)
    with pytest.raises(ModelLoadError, match=f"model.fp32.onnx is a {expected}"):
        _within(20, lambda: Session(lone))


def test_graph_size_is_checked_before_hashing(bundle_copy, monkeypatch):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    entry = next(g for g in manifest["graphs"] if g["file"] == "model.fp32.onnx")
    entry["bytes"] += 1
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))

    def no_hash(*args, **kwargs):
        raise AssertionError("hashed a graph of the wrong size")

    monkeypatch.setattr("runtime._manifest.hashlib.sha256", no_hash)
    with pytest.raises(ModelLoadError, match=f"does not match its manifest: {entry['bytes'] - 1} bytes, "
                                             f"expected {entry['bytes']}"):
        Session(bundle_copy, precision="fp32")


def test_oversized_manifest_is_refused(bundle_copy):
    text = (bundle_copy / "manifest.json").read_text()
    (bundle_copy / "manifest.json").write_text(text + " " * MAX_MANIFEST_BYTES)
    with pytest.raises(ModelLoadError, match=f"at most {MAX_MANIFEST_BYTES} are read"):
        Session(bundle_copy)


# -- manifest strictness --------------------------------------------------------------------------
def test_manifest_with_a_bom_is_accepted(bundle_copy):
    path = bundle_copy / "manifest.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_manifest(bundle_copy).family
    with Session(bundle_copy, threads=1) as session:
        assert session.manifest.family


@pytest.mark.parametrize("version", [True, 2.0, "2", None, [2]])
def test_schema_version_must_be_the_integer_2(bundle, version):
    data = json.loads((bundle / "manifest.json").read_text())
    with pytest.raises(ModelLoadError, match=re.escape(f"schema_version is {version!r}; expected the integer 2")):
        parse_manifest({**data, "schema_version": version})


@pytest.mark.parametrize("edit", ["height", "bytes", "opset", "read_channels", "channel"])
def test_booleans_are_not_integers(bundle, edit):
    data = json.loads((bundle / "manifest.json").read_text())
    if edit in ("height", "read_channels"):
        data["preprocess"][edit] = True if edit == "height" else [True, 1, 2]
    elif edit == "channel":
        if data["postprocess"]["kind"] != "heatmap":
            pytest.skip("a heatmap field")
        data["postprocess"]["channel"] = False
    else:
        data["graphs"][0][edit] = True
    with pytest.raises(ModelLoadError, match=f"{edit} is .*(True|False).*; expected"):
        parse_manifest(data)


# -- hostile arrays, paths and options at the Python API (the sweep of public entry points) --------------
def test_image_swapped_for_a_fifo_never_hangs(tmp_path):
    # The file was checked (is_file) and then opened again by the decoder: a FIFO swapped in
    # between blocked that open forever. Now one non-blocking open is checked and decoded.
    good, fifo, target = tmp_path / "good.tiff", tmp_path / "fifo", tmp_path / "x.tiff"
    write_tiff(good, np.full((3, H, W), 100, np.float32))
    write_tiff(target, np.full((3, H, W), 100, np.float32))
    os.mkfifo(fifo)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for source in (good, fifo):  # hard links: the FIFO stays reachable to unblock a reader
                os.link(source, tmp_path / "next")
                os.replace(tmp_path / "next", target)

    def read_many() -> dict[str, int]:
        outcomes = {"read": 0, "refused": 0}
        while not stop.is_set() and min(outcomes.values()) < 200:  # both outcomes seen: the race was run
            try:
                read_image(target)
                outcomes["read"] += 1
            except InvalidInputError as exc:
                assert "is not a file" in str(exc)
                outcomes["refused"] += 1
        return outcomes

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        outcomes = _within(30, read_many)
    finally:
        stop.set()
        swapper.join(5)
        try:  # a reader blocked in open() (the bug) returns once a writer comes: do not leave it hanging
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader blocked on it
    assert min(outcomes.values()) >= 200, outcomes


@pytest.mark.parametrize("shape", [(3, 100_000, 100_000), (100_000, 100_000, 3), (3, 20_000, 20_000)])
def test_wrong_sized_huge_array_is_refused_before_any_copy(bundle, shape):
    # A zero-cost broadcast view: the size check came after a copy of the channels (a MemoryError,
    # or 4.7 GB and 12 s for 20000 x 20000, before "expected 976x176").
    image = np.broadcast_to(np.float32(100), shape)
    with Session(bundle, threads=1) as session:
        with pytest.raises(InvalidInputError, match=f"expected {H}x{W} \\(height x width\\)"):
            _within(10, lambda: session.run(image))


def test_array_pixel_limit_is_the_file_limit():
    from runtime._imageio import to_chw

    with pytest.raises(InvalidInputError, match=f"has 100000x100000 pixels .*; at most {MAX_IMAGE_PIXELS}"):
        _within(10, lambda: to_chw(np.broadcast_to(np.float32(1), (3, 100_000, 100_000))))


@pytest.mark.parametrize("name", ["a" * 5000 + ".tiff", "a\x00b.tiff"], ids=["name-too-long", "nul"])
def test_unopenable_image_paths_are_invalid_input(tmp_path, name):
    with pytest.raises(InvalidInputError, match="cannot open image"):  # was an OSError / ValueError
        read_image(str(tmp_path / name))


def test_symlink_loop_is_invalid_input(tmp_path):
    loop = tmp_path / "loop.tiff"
    loop.symlink_to(loop)
    with pytest.raises(InvalidInputError, match="cannot open image .*loop.tiff"):
        read_image(loop)


@pytest.mark.parametrize("model, error, match", [
    (None, InvalidInputError, "model must be a path"),
    (3, InvalidInputError, "model must be a path"),
    ("/tmp/" + "a" * 5000, ModelLoadError, "cannot look at model"),  # was an OSError (name too long)
    ("/tmp/" + "a" * 5000 + ".onnx", ModelLoadError, "cannot look at model"),
], ids=["none", "int", "long", "long-onnx"])
def test_bad_model_arguments(model, error, match):
    with pytest.raises(error, match=match):
        Session(model)


@pytest.mark.parametrize("kwargs, match", [
    ({"threads": 1025}, r"threads must be an integer in 1\.\.1024"),  # 5000 took 6 minutes to load, 100000 hung
    ({"threads": 2 ** 40}, r"threads must be an integer in 1\.\.1024"),  # was a TypeError from onnxruntime
    ({"threads": True}, r"threads must be an integer in 1\.\.1024 or None, got True"),
    ({"threshold": True}, r"threshold must be a number in 0\.\.1, got True"),
    ({"options": {"threads": 1}}, r"options must be a SessionOptions, got dict"),  # was an AttributeError
], ids=["threads-1025", "threads-2**40", "threads-bool", "threshold-bool", "options-dict"])
def test_bad_session_options_are_invalid_input(bundle, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Session(bundle, **kwargs)


def test_batch_size_bool_and_numpy_threshold(bundle):
    from runtime import SessionOptions

    with pytest.raises(InvalidInputError, match="batch_size must be a positive integer, got True"):
        SessionOptions(batch_size=True)
    with Session(bundle, threads=1, threshold=np.float32(0.25)) as session:  # was refused as not a number
        assert session.threshold == 0.25 and type(session.threshold) is float


def test_close_waits_for_runs_in_progress(bundle, strips):
    # close() on one thread while run() is inside the engine on another released the engine under
    # it: an AttributeError (native, OpenVINO) or an engine error. Now close waits for the run.
    from runtime import BackendError

    session = Session(bundle, threads=1)
    impl, inside, release = session._impl, threading.Event(), threading.Event()
    real = impl.run

    def held_run(feeds):
        inside.set()
        assert release.wait(30)
        return real(feeds)

    impl.run = held_run
    results: list = []
    running = threading.Thread(target=lambda: results.append(session.run(strips[0])))
    running.start()
    assert inside.wait(30)
    closing = threading.Thread(target=session.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive(), "close() released the engine under a run in progress"
    release.set()
    running.join(30)
    closing.join(30)
    assert not closing.is_alive() and len(results) == 1 and results[0].heatmap.shape == (H, W)
    assert session.closed
    with pytest.raises(BackendError, match="the session is closed"):
        session.run(strips[0])


# -- the same hardening on every registered family (the ``family`` fixture) ------------------------------
def test_every_family_refuses_corrupt_images_by_name(family_bundle, tmp_path):
    with Session(family_bundle, threads=1) as session:
        for name, path in _corrupt_files(tmp_path).items():
            with pytest.raises(InvalidInputError, match=name):
                session.run(path)


@pytest.mark.parametrize("shape", [(3, 100_000, 100_000), (100_000, 100_000, 4)])
def test_every_family_refuses_a_huge_array_before_any_copy(family_bundle, shape):
    image = np.broadcast_to(np.float32(100), shape)  # 120 GB if anything copied it
    with Session(family_bundle, threads=1) as session:
        pre = session.manifest.preprocess
        expected = (rf"expected {pre.height}x{pre.width} \(height x width\)" if pre.resize == "exact"
                    else rf"has 100000x100000 pixels .*; at most {MAX_IMAGE_PIXELS}")
        with pytest.raises(InvalidInputError, match=expected):
            _within(10, lambda: session.run(image))


def test_every_family_cli_goes_on_after_bad_images(family_bundle, family_images, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    bad = set(_corrupt_files(folder))
    write_tiff(folder / "good.tiff", family_images[0])
    write_tiff(folder / "nan.tiff", np.full_like(family_images[0], np.nan))
    out = tmp_path / "out"
    code = _cli.main([str(family_bundle), str(folder), "--out", str(out), "--no-progress", "--threads", "1",
                      "--visualize"])
    assert code == 1 and "4 input(s) failed" in capsys.readouterr().err
    rows = {Path(r["file"]).name: r for r in _summary(out)}
    assert set(rows) == bad | {"good.tiff", "nan.tiff"}
    good = rows.pop("good.tiff")
    assert good["status"] == "ok" and good["outputs"]
    assert {p.name for p in out.iterdir()} == set(good["outputs"].split()) | {"summary.csv"}
    for name, row in rows.items():
        assert row["status"] == "error" and name in row["error"] and row["outputs"] == ""
