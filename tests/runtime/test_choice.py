"""What precision="auto" and backend="auto" run, and why: the accuracy record, the CPU, the reason given."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from runtime import ModelLoadError, Session
from runtime._choice import choose_precision, guard_verdict
from runtime._cpu import CpuInfo, cpu_info
from runtime._manifest import read_manifest
from runtime._metrics import heatmap_agreement, keypoint_agreement
from runtime._options import Precision

VNNI = CpuInfo("test CPU", "x86_64", frozenset({"avx2", "avx512_vnni"}), 2, 2)
AVX2_ONLY = CpuInfo("test CPU", "x86_64", frozenset({"avx2", "fma"}), 2, 2)


def _record(passed: bool, **losses: float) -> dict:
    losses = losses or {"pixel_auroc": 0.001}
    return {"images": 16, "threshold": 0.5, "values": {"pixel_auroc": 0.99, "decision_agreement": 1.0},
            "losses": losses, "allowed": {name: 0.005 for name in losses}, "passed": passed}


def _set_accuracy(bundle, **records) -> None:
    """Give the bundle's full graphs of the named precisions these accuracy records (None: remove it)."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    for graph in manifest["graphs"]:
        if graph["layer"] == "full" and graph["precision"] in records:
            if records[graph["precision"]] is None:
                graph.pop("accuracy", None)
            else:
                graph["accuracy"] = records[graph["precision"]]
    path.write_text(json.dumps(manifest))


def test_the_export_records_every_full_graphs_accuracy(bundle):
    manifest = read_manifest(bundle)
    for graph in manifest.graphs:
        assert (graph.accuracy is not None) == (graph.layer == "full"), graph.file
    fp32 = manifest.graph(precision="fp32").accuracy
    assert fp32.passed and fp32.values["decision_agreement"] == 1.0 and fp32.values["pixel_f1"] == 1.0
    assert fp32.threshold == manifest.postprocess.default_threshold
    assert set(fp32.allowed) == {"pixel_auroc", "decision_agreement", "pixel_f1"}
    int8 = manifest.graph(precision="int8").accuracy
    assert int8.passed == all(int8.losses[m] <= int8.allowed[m] for m in int8.allowed)


def test_auto_runs_int8_only_within_the_guard_and_on_an_int8_dot_cpu(bundle_copy):
    _set_accuracy(bundle_copy, int8=_record(True))
    manifest = read_manifest(bundle_copy)
    available = manifest.precisions("full")
    chosen, why = choose_precision(Precision.AUTO, "cpu", manifest, available, cpu=VNNI)
    assert chosen == "int8" and "avx512_vnni" in why and "within the bundle's accuracy guard" in why
    chosen, why = choose_precision(Precision.AUTO, "cpu", manifest, available, cpu=AVX2_ONLY)
    assert chosen == "fp32" and "no INT8 dot-product" in why and "runtime.tune" in why
    assert choose_precision(Precision.AUTO, "cuda:0", manifest, available, cpu=VNNI)[0] == "fp16"
    assert choose_precision(Precision.FP16, "cpu", manifest, available, cpu=VNNI) == ("fp16",
                                                                                     "precision fp16 as asked")

    _set_accuracy(bundle_copy, int8=_record(False, pixel_auroc=0.2))
    manifest = read_manifest(bundle_copy)
    chosen, why = choose_precision(Precision.AUTO, "cpu", manifest, available, cpu=VNNI)
    assert chosen == "fp32" and "pixel_auroc loss 0.2 > 0.005" in why

    _set_accuracy(bundle_copy, int8=None, fp16=_record(False, pixel_auroc=0.1))
    manifest = read_manifest(bundle_copy)
    chosen, why = choose_precision(Precision.AUTO, "cpu", manifest, available, cpu=VNNI)
    assert chosen == "fp32" and "no accuracy record" in why and "re-export" in why
    assert choose_precision(Precision.AUTO, "cuda", manifest, available, cpu=VNNI)[0] == "fp32"


@pytest.mark.skipif(cpu_info().int8_dot is None, reason="this CPU has no INT8 dot product")
def test_session_tells_what_auto_chose_and_why(bundle_copy, caplog):
    _set_accuracy(bundle_copy, int8=_record(True))
    with caplog.at_level(logging.INFO, logger="runtime"), Session(bundle_copy) as session:
        assert (session.backend, session.precision) == ("onnxruntime", "int8")
        assert session.choice.precision == "int8" and "accuracy guard" in session.choice.reason
    assert any("int8" in r.getMessage() and "accuracy guard" in r.getMessage() for r in caplog.records)
    with Session(bundle_copy, backend="onnxruntime", precision="fp32") as session:
        assert session.precision == "fp32" and session.choice.reason == "as asked"


def test_guard_verdict_names_the_failing_figure(bundle_copy):
    _set_accuracy(bundle_copy, int8=_record(False, pixel_auroc=0.0, pixel_f1=0.3))
    ok, why = guard_verdict(read_manifest(bundle_copy).graph(precision="int8"))
    assert ok is False and "pixel_f1 loss 0.3 > 0.005" in why and "pixel_auroc" not in why.split(":", 1)[1]
    assert guard_verdict(read_manifest(bundle_copy).graph(precision="fp32"))[0] is True


@pytest.mark.parametrize("record, problem", [
    ({"images": 0}, "images"),
    ({"values": {"pixel_auroc": "high"}}, "values"),
    ({"losses": {"pixel_f1": 0.1}}, "allowed"),  # a loss without an allowance
    ({"passed": 1}, "passed"),
])
def test_a_malformed_accuracy_record_is_refused_by_name(bundle_copy, record, problem):
    _set_accuracy(bundle_copy, int8={**_record(True), **record})
    with pytest.raises(ModelLoadError, match=rf"accuracy\.{problem}"):
        read_manifest(bundle_copy)


def test_heatmap_agreement_counts_decisions_pixels_and_score_shifts():
    reference = np.zeros((3, 4, 4), bool)
    reference[0, :2, :2] = True  # 4 defect pixels in image 0, none elsewhere
    masks = reference.copy()
    masks[0, 0, 0] = False  # one pixel lost
    masks[2, 3, 3] = True  # image 2 now looks defective: its decision flips
    out = heatmap_agreement(masks, reference, np.array([0.9, 0.1, 0.6]), np.array([0.95, 0.1, 0.4]))
    assert out["decision_agreement"] == pytest.approx(2 / 3)
    assert out["pixel_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))
    assert out["score_shift_max"] == pytest.approx(0.2) and out["score_shift_mean"] == pytest.approx(0.25 / 3)
    same = heatmap_agreement(reference, reference, np.zeros(3), np.zeros(3))
    assert same["decision_agreement"] == same["pixel_f1"] == 1.0
    nothing = np.zeros((2, 3, 3), bool)
    assert heatmap_agreement(nothing, nothing, np.zeros(2), np.zeros(2))["pixel_f1"] == 1.0
    with pytest.raises(ValueError, match="one shape"):
        heatmap_agreement(nothing, reference, np.zeros(2), np.zeros(3))


def test_keypoint_agreement_counts_found_points_and_shifts():
    reference = np.array([[[10.0, 10.0], [50.0, 20.0]]])
    moved = reference + np.array([[[3.0, 4.0], [0.0, 0.0]]])
    out = keypoint_agreement(moved, reference, np.array([[True, False]]), np.array([[True, True]]),
                             np.array([359.0]), np.array([1.0]))
    assert out["decision_agreement"] == 0.5
    assert out["point_shift_max_px"] == pytest.approx(5.0) and out["point_shift_mean_px"] == pytest.approx(2.5)
    assert out["angle_shift_max_deg"] == pytest.approx(2.0)  # wrapped: 359 and 1 are 2 degrees apart
