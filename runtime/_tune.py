"""Measuring a bundle's backends x precisions on this machine, and the record ``"auto"`` reads (``tune.json``).

Which combination is fastest depends on the model and the CPU (OpenVINO INT8
wins on one bundle, ONNX Runtime's on another), so it is measured where the
bundle runs: ``python -m runtime.tune BUNDLE`` times every backend x precision
whose graph passed the bundle's accuracy guard, side by side, and writes
``BUNDLE/tune.json``. A :class:`runtime.Session` with ``backend="auto"`` or
``precision="auto"`` then runs the fastest one (:mod:`runtime._choice`) as long
as the record is for this machine (CPU, its flags, threads and the engines'
versions) and this bundle (its manifest's sha256); otherwise it ignores the
record with a warning that says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from runtime._choice import guard_verdict
from runtime._cpu import cpu_info
from runtime._errors import SdkError
from runtime._imageio import atomic_write
from runtime._manifest import MANIFEST_NAME, Manifest, read_manifest
from runtime._options import SessionOptions
from runtime._timing import interleaved

TUNE_FILE = "tune.json"
FORMAT = 1


@dataclass(frozen=True)
class Measurement:
    """One backend x precision timed on this machine (batch 1, the pre-processing included)."""

    backend: str
    device: str
    precision: str
    threads: int
    ms_median: float
    ms_p90: float


@dataclass(frozen=True)
class Tuning:
    """What ``runtime.tune`` measured for one bundle on one machine."""

    path: Path
    created: str
    machine: dict[str, Any]
    manifest_sha256: str
    measurements: tuple[Measurement, ...]

    def fastest(self, *, backend: str | None = None, precision: str | None = None, device: str | None = None,
                allowed: Callable[[Measurement], bool] = lambda m: True) -> Measurement | None:
        """The fastest measurement that matches every given filter (None: any), or None."""
        fits = [m for m in self.measurements if (backend is None or m.backend == backend)
                and (precision is None or m.precision == precision) and (device is None or m.device == device)
                and allowed(m)]
        return min(fits, key=lambda m: m.ms_median, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "created": self.created, "machine": self.machine,
                "manifest_sha256": self.manifest_sha256,
                "measurements": [dataclasses.asdict(m) for m in self.measurements]}


def machine_fingerprint() -> dict[str, Any]:
    """What makes a timing valid here: the CPU, its flags, the threads a session uses, the engines' versions."""
    from importlib import metadata

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    cpu = cpu_info()
    return {**cpu.to_dict(), "python": platform.python_version(),
            "onnxruntime": version("onnxruntime") or version("onnxruntime-gpu"), "openvino": version("openvino")}


def manifest_sha256(bundle: Path) -> str:
    return hashlib.sha256((Path(bundle) / MANIFEST_NAME).read_bytes()).hexdigest()


def load_tuning(bundle: Path) -> tuple[Tuning | None, str]:
    """The bundle's ``tune.json`` when it applies here.

    Returns:
        ``(None, "")`` without a record; ``(None, reason)`` for a record that does not apply
        (unreadable, measured on another machine or with other engines, or for another manifest);
        ``(Tuning, "")`` otherwise. Never raises: a stale or broken record must not stop inference.
    """
    path = Path(bundle) / TUNE_FILE
    if not path.is_file():
        return None, ""
    try:
        tuning = _parse(json.loads(path.read_text(encoding="utf-8")), path)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable ({exc})"
    here = machine_fingerprint()
    changed = [key for key in sorted(set(here) | set(tuning.machine)) if here.get(key) != tuning.machine.get(key)]
    if changed:
        key = changed[0]
        return None, (f"measured on another machine or set-up ({key}: {tuning.machine.get(key)!r} there, "
                      f"{here.get(key)!r} here)")
    try:
        current = manifest_sha256(bundle)
    except OSError as exc:
        return None, f"cannot read the manifest ({exc.strerror or exc})"
    if current != tuning.manifest_sha256:
        return None, "measured for another manifest (the bundle was re-exported since)"
    return tuning, ""


def _parse(data: Any, path: Path) -> Tuning:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"expected a JSON object of format {FORMAT}")
    measurements = []
    for item in data["measurements"]:
        m = Measurement(str(item["backend"]), str(item["device"]), str(item["precision"]), int(item["threads"]),
                        float(item["ms_median"]), float(item["ms_p90"]))
        if not (np.isfinite(m.ms_median) and m.ms_median > 0):
            raise ValueError(f"bad time {m.ms_median!r} for {m.backend} {m.precision}")
        measurements.append(m)
    if not isinstance(data["machine"], dict):
        raise ValueError("machine must be an object")
    return Tuning(path, str(data["created"]), data["machine"], str(data["manifest_sha256"]), tuple(measurements))


def save_tuning(tuning: Tuning, path: Path) -> None:
    """Write ``tuning`` as JSON, atomically (a reader never sees half a file)."""
    text = json.dumps(tuning.to_dict(), indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def sample_image(manifest: Manifest, seed: int = 0) -> np.ndarray:
    """A seeded random image the bundle accepts: (channels read, height, width) in its source range."""
    pre = manifest.preprocess
    low, high = pre.source_range
    channels = max(pre.read_channels) + 1
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(low, high, (channels, pre.height, pre.width))).astype(np.float32)


def measure(bundle: Path, *, backends: Sequence[str], precisions: Sequence[str], device: str = "cpu",
            threads: int | None = None, rounds: int = 7, progress: bool = False) -> tuple[Tuning, list[str]]:
    """Time every backend x precision of ``bundle`` side by side on one image; (the record, notes on what was skipped).

    A precision whose graph failed the bundle's accuracy guard is skipped; one without an
    accuracy record is measured (``precision=`` may still ask for it) but never chosen by
    ``"auto"``. A backend that is not installed or cannot open the graph is skipped with a note.

    Raises:
        InvalidInputError / ModelLoadError: a bundle that cannot be read.
    """
    from runtime._session import Session

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    sha = manifest_sha256(bundle)
    available = manifest.precisions("full")
    options = SessionOptions(threads=threads)
    notes: list[str] = []
    sessions: dict[str, Session] = {}
    image = sample_image(manifest)
    try:
        for precision in precisions:
            if precision not in available:
                notes.append(f"{precision}: the bundle has no {precision} graph")
                continue
            passed, why = guard_verdict(manifest.graph(precision=precision))
            if passed is False:
                notes.append(f"{precision} skipped: {why}")
                continue
            if passed is None:
                notes.append(f"{precision} measured but never chosen by 'auto': {why}")
            for backend in backends:
                try:
                    sessions[f"{backend} {precision}"] = Session(bundle, backend=backend, device=device,
                                                                 precision=precision, options=options)
                except ImportError as exc:
                    notes.append(f"{backend} skipped: {exc}")
                except SdkError as exc:  # an engine that cannot run this graph here
                    notes.append(f"{backend} {precision} skipped: {exc}")
        if progress:
            print(f"timing {len(sessions)} combination(s), {rounds} round(s) each ...", flush=True)
        timings = interleaved({name: (lambda s=s: s.run(image)) for name, s in sessions.items()}, rounds=rounds,
                              warmup=1) if sessions else None
        measurements = tuple(
            Measurement(s.backend, s.device, s.precision, s.options.resolved_threads(),
                        timings.median(name) * 1e3, timings.percentile(name, 90) * 1e3)
            for name, s in sessions.items()) if timings else ()
    finally:
        for s in sessions.values():
            s.close()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Tuning(bundle / TUNE_FILE, created, machine_fingerprint(), sha, measurements), notes
