"""python -m runtime.tune: measured on this machine, recorded beside the bundle, used by "auto" only where it applies."""

from __future__ import annotations

import json

import pytest

from runtime import Session
from runtime._tune import TUNE_FILE, Measurement, Tuning, load_tuning, machine_fingerprint, measure, save_tuning
from runtime.tune import main


def _fake_tuning(bundle, times: dict[tuple[str, str], float]) -> Tuning:
    """A record of this machine and bundle with chosen times (what runtime.tune would write)."""
    from runtime._tune import manifest_sha256

    return Tuning(bundle / TUNE_FILE, "2026-01-01T00:00:00Z", machine_fingerprint(), manifest_sha256(bundle),
                  tuple(Measurement(b, "cpu", p, 2, ms, ms * 1.1) for (b, p), ms in times.items()))


def test_measure_save_load_round_trip(bundle_copy):
    tuning, notes = measure(bundle_copy, backends=["onnxruntime"], precisions=["fp32", "int8"], rounds=2)
    measured = {(m.backend, m.precision) for m in tuning.measurements}
    assert ("onnxruntime", "fp32") in measured
    int8_failed = "int8 skipped" in " ".join(notes)
    assert (("onnxruntime", "int8") in measured) != int8_failed
    assert all(m.ms_median > 0 and m.ms_p90 >= m.ms_median * 0.5 and m.device == "cpu" for m in tuning.measurements)
    save_tuning(tuning, bundle_copy / TUNE_FILE)
    loaded, why = load_tuning(bundle_copy)
    assert why == "" and loaded.measurements == tuning.measurements


def test_fastest_honours_every_filter(bundle_copy):
    tuning = _fake_tuning(bundle_copy, {("onnxruntime", "fp32"): 50.0, ("openvino", "fp32"): 40.0,
                                        ("onnxruntime", "fp16"): 30.0})
    assert tuning.fastest().backend == "onnxruntime" and tuning.fastest().precision == "fp16"
    assert tuning.fastest(precision="fp32").backend == "openvino"
    assert tuning.fastest(backend="onnxruntime", precision="fp32").ms_median == 50.0
    assert tuning.fastest(allowed=lambda m: m.precision == "fp32").backend == "openvino"
    assert tuning.fastest(device="cuda") is None


def test_auto_runs_the_fastest_measured_within_the_guard(bundle_copy):
    tuning = _fake_tuning(bundle_copy, {("onnxruntime", "fp32"): 50.0, ("onnxruntime", "fp16"): 20.0})
    save_tuning(tuning, bundle_copy / TUNE_FILE)
    with Session(bundle_copy) as session:
        assert (session.backend, session.precision) == ("onnxruntime", "fp16")
        assert "measured on this machine by runtime.tune" in session.choice.reason
    with Session(bundle_copy, precision="fp32") as session:  # a fixed precision: the fastest backend for it
        assert (session.backend, session.precision) == ("onnxruntime", "fp32")


def test_a_record_that_does_not_apply_is_ignored_with_the_reason(bundle_copy, caplog):
    assert load_tuning(bundle_copy) == (None, "")
    tuning = _fake_tuning(bundle_copy, {("onnxruntime", "fp16"): 1.0})
    path = bundle_copy / TUNE_FILE
    record = tuning.to_dict()

    path.write_text(json.dumps({**record, "machine": {**record["machine"], "model": "Another CPU"}}))
    assert load_tuning(bundle_copy)[0] is None and "model" in load_tuning(bundle_copy)[1]
    with Session(bundle_copy, precision="auto") as session:  # the known rule instead: fp16 never on a CPU
        assert session.precision != "fp16"
    assert any("ignoring" in r.getMessage() and "another machine" in r.getMessage() for r in caplog.records)

    path.write_text(json.dumps({**record, "manifest_sha256": "0" * 64}))
    assert "another manifest" in load_tuning(bundle_copy)[1]
    path.write_text("{not json")
    assert load_tuning(bundle_copy)[0] is None and "unreadable" in load_tuning(bundle_copy)[1]
    path.write_text(json.dumps({**record, "measurements": [{"backend": "onnxruntime"}]}))
    assert "unreadable" in load_tuning(bundle_copy)[1]


def test_a_precision_that_failed_its_guard_is_not_measured(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for graph in manifest["graphs"]:
        if graph["precision"] == "int8":
            graph["accuracy"] = {"images": 4, "threshold": 0.5, "values": {"pixel_auroc": 0.5},
                                 "losses": {"pixel_auroc": 0.4}, "allowed": {"pixel_auroc": 0.005}, "passed": False}
    manifest_path.write_text(json.dumps(manifest))
    tuning, notes = measure(bundle_copy, backends=["onnxruntime"], precisions=["fp32", "int8"], rounds=1)
    assert [m.precision for m in tuning.measurements] == ["fp32"]
    assert any("int8 skipped" in n and "pixel_auroc loss 0.4 > 0.005" in n for n in notes)


def test_cli_writes_the_record_and_says_what_auto_runs(bundle_copy, capsys):
    assert main([str(bundle_copy), "--rounds", "2", "--backends", "onnxruntime", "--precisions", "fp32,fp16",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "backend='auto', precision='auto' will now run onnxruntime" in out and "vs onnxruntime fp32" in out
    assert load_tuning(bundle_copy)[0] is not None


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "no such bundle"),
    (["{lone}"], "not a bundle directory"),
    (["{bundle}", "--backends", "tensorflow"], "unsupported backend 'tensorflow'"),
    (["{bundle}", "--precisions", "int4"], "unsupported precision 'int4'"),
    (["{bundle}", "--rounds", "0"], "--rounds must be at least 1"),
])
def test_cli_bad_usage_exits_2_before_measuring(bundle_copy, tmp_path, capsys, argv, message):
    paths = {"missing": tmp_path / "nothing", "lone": bundle_copy / "model.fp32.onnx", "bundle": bundle_copy}
    assert main([a.format(**paths) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert not (bundle_copy / TUNE_FILE).exists()
