"""Backend parity, OpenVINO threading, device and missing-backend handling.

Tolerances (max abs difference of the heatmap, ONNX Runtime vs OpenVINO, same graph).
Measured on the tiny bundle (4 test strips), on a base-width-8 and on the base-width-64
bundle: FP32 1.2e-7, FP16 2.5e-4, INT8 6.3e-3 at most (means 2e-8, 1.3e-4, 1.8e-3).
The bounds below leave about 4x headroom:

* FP32: < 1e-4 (both compute in FP32; OpenVINO is forced to f32 inference precision).
* FP16: < 1e-3. ONNX Runtime's CPU provider has few FP16 kernels and wraps the others in
  casts, so activations are rounded to FP16 between ops; OpenVINO's CPU plugin
  decompresses the FP16 weights and keeps activations in FP32. They differ by FP16
  rounding of the activations.
* INT8: < 2.5e-2. Both run the same QDQ graph but fuse and requantize differently
  (integer convolutions with per-op requantization vs OpenVINO's low-precision
  transformations), so values one quantization step apart can differ.

For reference, each precision against ONNX Runtime FP32 on the tiny bundle: FP16 2.6e-4,
INT8 1.0e-2 (ORT) / 8.8e-3 (OpenVINO); the export's parity.json has these against PyTorch.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runtime import BackendError, InferencePrecision, InvalidInputError, Session, SessionOptions

TOLERANCES = {"fp32": 1e-4, "fp16": 1e-3, "int8": 2.5e-2}


@pytest.mark.openvino
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_onnxruntime_openvino_parity(bundle, strips, precision):
    with Session(bundle, backend="onnxruntime", precision=precision) as ort_session, \
            Session(bundle, backend="openvino", precision=precision) as ov_session:
        assert ov_session.backend == "openvino" and ov_session.providers == ("CPU",)
        a = np.stack([r.heatmap for r in ort_session.run(strips)])
        b = np.stack([r.heatmap for r in ov_session.run(strips)])
    diff = float(np.abs(a - b).max())
    assert diff < TOLERANCES[precision], f"{precision}: max abs diff {diff:.3g}"


@pytest.mark.openvino
def test_openvino_concurrent_runs_equal_sequential(bundle, strips):
    with Session(bundle, backend="openvino") as s:
        expected = [s.run(x).heatmap for x in strips]
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda i: [s.run(strips[(i + k) % 4]).heatmap for k in range(3)], range(4)))
    for i, heatmaps in enumerate(outcomes):
        for k, heatmap in enumerate(heatmaps):
            np.testing.assert_allclose(heatmap, expected[(i + k) % 4], atol=1e-6)


@pytest.mark.openvino
def test_openvino_batch_and_hints(bundle, strips):
    options = SessionOptions(performance_hint="throughput", inference_precision=InferencePrecision.BF16)
    with Session(bundle, backend="openvino", options=options) as fast, Session(bundle, backend="openvino") as exact:
        batch = fast.run(strips)
        for result, x in zip(batch, strips):
            # bf16 compute is an opt-in speed-up, not an exact one
            assert np.abs(result.heatmap - exact.run(x).heatmap).max() < 0.1


def test_cuda_without_provider_is_a_backend_error(bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed")
    with pytest.raises(BackendError, match=r"edge-vision-sdk\[gpu\]"):
        Session(bundle, backend="onnxruntime", device="cuda")


def test_unknown_names_are_invalid_input(bundle):
    with pytest.raises(InvalidInputError, match="unsupported backend 'tensorflow'"):
        Session(bundle, backend="tensorflow")
    with pytest.raises(InvalidInputError, match="unsupported precision 'int4'"):
        Session(bundle, precision="int4")
    with pytest.raises(BackendError, match="cannot run on device 'tpu'"):
        Session(bundle, backend="onnxruntime", device="tpu")
    with pytest.raises(InvalidInputError, match="threads"):
        Session(bundle, threads=0)
    with pytest.raises(InvalidInputError, match="threshold"):
        Session(bundle, threshold=2.0)


@pytest.mark.parametrize("backend, package", [("openvino", "openvino"), ("onnxruntime", "onnxruntime")])
def test_missing_backend_says_what_to_install(bundle, monkeypatch, backend, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import <package>` raise ImportError
    with pytest.raises(ImportError, match=r"pip install") as info:
        Session(bundle, backend=backend)
    if backend == "openvino":
        assert "pip install 'edge-vision-sdk[openvino]'" in str(info.value)
