"""CTest step: run the example host on a family fixture and check what it prints and writes against Python.

Runs ``HOST FIXTURE/bundle FIXTURE/INPUT FIXTURE/host-<INPUT>.tiff`` and checks:
the printed transform equals the Python one, and by postprocess kind, the
heatmap TIFF (heatmap), every named point in source pixels with its score,
found flag and the angle (keypoints: the Python runtime's within 1e-3 px,
1e-4 and 1e-3 degrees) or every printed output's shape and first values
(other kinds) equal Python's (make_fixture.py's references), to 1e-6 with
exact resize and 1e-4 when letterboxed.

Usage: python tests/cpp/check_host_output.py FIXTURE_DIR HOST_EXECUTABLE INPUT_TIFF_NAME
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np


def _check_keypoints(stdout: str, facts: dict, want: dict) -> list[str]:
    """The host's keypoint lines against what the Python runtime decoded for the image."""
    failures = []
    printed = {m[1]: (float(m[2]), float(m[3]), float(m[4]), m[5])
               for m in re.finditer(r"^image 0 point (\S+): x=(\S+) y=(\S+) score=(\S+) (found|not found)$", stdout, re.M)}
    if list(printed) != facts["names"]:
        failures.append(f"points printed {list(printed)}; expected {facts['names']} in that order")
    for name, (x, y), score in zip(facts["names"], want["points"], want["scores"]):
        if name not in printed:
            continue
        gx, gy, gscore, flag = printed[name]
        distance = float(np.hypot(gx - x, gy - y))
        print(f"point {name} vs python runtime: {distance:.3g} px, score {gscore} vs {score:.6f}")
        if not distance < 1e-3:
            failures.append(f"point {name} at ({gx}, {gy}) is {distance:.3g} px from Python's ({x}, {y})")
        if not abs(gscore - score) < 1e-4:
            failures.append(f"point {name} score {gscore}; Python {score}")
        if (flag == "found") != (gscore >= facts["threshold"]):
            failures.append(f"point {name} printed as {flag!r} with score {gscore}, threshold {facts['threshold']}")
    angle = re.search(r"^image 0 angle: (\S+) degrees$", stdout, re.M)
    if want["angle"] is None:
        if angle:
            failures.append(f"an angle is printed ({angle[1]}); the model has none")
    elif not angle:
        failures.append("no angle line")
    elif not abs(float(angle[1]) - want["angle"]) < 1e-3:
        failures.append(f"angle {angle[1]}; Python {want['angle']}")
    return failures


def main() -> int:
    fixture, host, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    meta = json.loads((fixture / "fixture.json").read_text())
    image = meta["images"][meta["tiff"]["image"]]
    tolerance = 1e-4 if meta["resize"] == "letterbox" else 1e-6
    out_tiff = fixture / f"host-{Path(name).stem}.tiff"
    run = subprocess.run([host, str(fixture / "bundle"), str(fixture / name), str(out_tiff)],
                         capture_output=True, text=True, timeout=300)
    print(run.stdout + run.stderr)
    if run.returncode != 0:
        print(f"the host failed with status {run.returncode}")
        return 1
    failures = []

    match = re.search(r"^transform: scale_x=(\S+) scale_y=(\S+) pad_x=(-?\d+) pad_y=(-?\d+) "
                      r"resized=(\d+)x(\d+) source=(\d+)x(\d+)$", run.stdout, re.M)
    want = image["transform"]
    if not match:
        failures.append("no transform line")
    elif (float(match[1]), float(match[2]), *map(int, match.groups()[2:])) != (
            want["scale_x"], want["scale_y"], want["pad_x"], want["pad_y"], want["resized_width"],
            want["resized_height"], want["source_width"], want["source_height"]):
        failures.append(f"transform {match.group(0)} differs from Python's {want}")

    refs = [np.fromfile(fixture / f, np.float32) for f in image["refs"]]
    if meta["kind"] == "heatmap":
        import tifffile

        spec = meta["heatmap"]
        shape = meta["outputs"][spec["output"]]["shape"]
        h, w = shape[2], shape[3]
        reference = np.clip(refs[spec["output"]].reshape(-1, *shape[1:])[0, spec["channel"]], *spec["range"])
        heatmap = tifffile.imread(out_tiff)
        if heatmap.dtype != np.float32 or heatmap.shape != (h, w):
            failures.append(f"host heatmap is {heatmap.dtype} {heatmap.shape}; expected float32 ({h}, {w})")
        else:
            diff = float(np.abs(heatmap - reference).max())
            print(f"{out_tiff.name} vs python onnxruntime: max abs diff {diff:.3g}")
            if not diff < tolerance:
                failures.append(f"heatmap max abs diff {diff:.3g}")
    elif meta["kind"] == "keypoints":
        failures += _check_keypoints(run.stdout, meta["keypoints"], image["keypoints"])
    else:
        printed = {m[1]: (m[2], m[3]) for m in re.finditer(r"^output (\S+) \[([\d, ]+)\]:([^\n]*)$", run.stdout, re.M)}
        for spec, ref in zip(meta["outputs"], refs):
            if spec["name"] not in printed:
                failures.append(f"output {spec['name']} not printed")
                continue
            shape, values = printed[spec["name"]]
            expected_shape = [1 if d < 0 else d for d in spec["shape"]]
            if [int(d) for d in shape.split(",")] != expected_shape:
                failures.append(f"output {spec['name']} printed as [{shape}]; expected {expected_shape}")
            got = np.array([float(v) for v in values.replace("...", "").split()], np.float32)
            diff = float(np.abs(got - ref[:len(got)]).max()) if len(got) else float("inf")
            print(f"output {spec['name']} vs python onnxruntime: max abs diff {diff:.3g} (first {len(got)} values)")
            if not diff < tolerance:
                failures.append(f"output {spec['name']} max abs diff {diff:.3g}")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
