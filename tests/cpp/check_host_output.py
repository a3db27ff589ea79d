"""CTest step: the example host's heatmap TIFF equals Python ONNX Runtime's heatmap of the same input.

Usage: python tests/cpp/check_host_output.py FIXTURE_DIR [HEATMAP_NAME]
"""

import json
import sys
from pathlib import Path

import numpy as np
import tifffile


def main() -> int:
    fixture = Path(sys.argv[1])
    meta = json.loads((fixture / "fixture.json").read_text())
    h, w = meta["height"], meta["width"]
    name = sys.argv[2] if len(sys.argv) > 2 else "host-heatmap.tiff"
    heatmap = tifffile.imread(fixture / name)
    reference = np.fromfile(fixture / "ref_full.f32", np.float32).reshape(-1, 3, h, w)[0, 0]
    if heatmap.dtype != np.float32 or heatmap.shape != (h, w):
        print(f"host heatmap is {heatmap.dtype} {heatmap.shape}; expected float32 ({h}, {w})")
        return 1
    diff = float(np.abs(heatmap - reference).max())
    print(f"{name} vs python onnxruntime: max abs diff {diff:.3g}")
    return 0 if diff < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
