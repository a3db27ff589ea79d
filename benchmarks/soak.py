"""Soak test of the runtimes: shared-session concurrency, create/destroy cycles, RSS, fds and threads.

    python -m benchmarks.soak                               # tiny trained bundle, every backend x precision
    python -m benchmarks.soak --bundle bundles/brn --backends onnxruntime,native --precisions int8 --out soak.json
    make soak                                               # the defaults below, about 4 minutes on 2 cores

For every available backend (onnxruntime, openvino when importable, native when
``runtime._native`` is built) and every precision of the bundle's full-image graph:

1. a reference result per image, computed once, single-threaded;
2. ``--threads`` threads x ``--runs`` runs on ONE shared :class:`runtime.Session`
   (``Session.run`` is documented thread-safe on every backend: ONNX Runtime
   sessions are, OpenVINO hands each concurrent call its own infer request,
   libruntime's run is; see ``runtime/_session.py`` and ``runtime/_backends/``),
   each result compared bitwise with the reference (every array field of the
   family's result: same shape, dtype and bytes; every scalar field equal);
3. ``--cycles`` cycles of Session create -> run -> close, each result compared
   with the reference too (a fresh session must compute the same bits);
4. RSS (``VmRSS``), open file descriptors and threads of this process
   (``/proc/self``) before, during (every ``--sample-interval`` s) and after, and
   the RSS growth per 100 cycles from the ``--warmup``-th cycle on: one reading
   per cycle after glibc's ``malloc_trim(0)``, and the Theil-Sen slope (median
   of pairwise slopes) over them, which a short burst cannot swing.

It prints one table row per backend x precision and writes the rows as JSON with
``--out FILE``. Exit status 1 when any result differs from its reference, any
run fails, file descriptors or threads are left behind by the cycles, or RSS
grows by more than ``--max-rss-growth-mib`` per 100 cycles; 2 for bad arguments.
Linux only (it reads ``/proc``). This is not a pytest file (pytest collects
``test_*.py`` only).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import runtime
from runtime.core import atomic_write, read_manifest

MIB = 1 << 20
BACKENDS = tuple(b.value for b in runtime.Backend if b is not runtime.Backend.AUTO)

# Why 10 MiB per 100 cycles: with the heap trimmed before each reading (below)
# the post-warm-up slope measured on the tiny bundle stays under 1.5 MiB per 100
# cycles on every backend (engine caches that settle), while the leaks worth
# catching are far above it: one brn output is 2 MiB (3 x 976 x 176 float32), so
# leaking a result per cycle grows ~200 MiB per 100 cycles, and a leaked engine
# session (graph bytes, kernels, arena) a few hundred KiB or more per cycle.
# 10 MiB (100 KiB per cycle) catches those with a wide margin over the noise.
DEFAULT_MAX_RSS_GROWTH_MIB = 10.0


def _malloc_trim() -> Any:
    path = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(path).malloc_trim if path else None
    except (OSError, AttributeError):  # not glibc
        return None


# glibc keeps freed heap pages and returns them in bursts: untrimmed, RSS after
# identical cycles jumps by 15-20 MiB for a few cycles and back, enough to fake
# a slope. malloc_trim(0) before each reading leaves live memory (and leaks).
_TRIM = _malloc_trim()


_READING = threading.Lock()


@dataclasses.dataclass
class Sample:
    """One reading of this process: resident memory, open file descriptors, threads."""

    rss: int
    fds: int
    threads: int

    @classmethod
    def take(cls, trim: bool = False) -> "Sample":
        # One reader at a time: listing /proc/self/fd opens a descriptor, which a
        # concurrent reading would count.
        with _READING:
            if trim and _TRIM is not None:
                _TRIM(0)
            rss = threads = 0
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                    elif line.startswith("Threads:"):
                        threads = int(line.split()[1])
            return cls(rss, len(os.listdir("/proc/self/fd")), threads)


class Sampler:
    """Samples the process every ``interval`` seconds in a thread, keeping the peak RSS."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.peak = Sample.take().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.note(Sample.take())

    def note(self, sample: Sample) -> Sample:
        self.peak = max(self.peak, sample.rss)
        return sample

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclasses.dataclass
class Row:
    """What one backend x precision did; the table row and its JSON object."""

    backend: str
    precision: str
    threads: int = 0
    runs: int = 0
    mismatches: int = 0
    cycle_mismatches: int = 0
    errors: int = 0
    cycles: int = 0
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_growth_mib_per_100: float | None = None
    rss_per_cycle_mib: list[float] = dataclasses.field(default_factory=list)
    fds_start: int = 0
    fds_end: int = 0
    fds_after_warmup: int = 0
    fds_after_cycles: int = 0
    threads_start: int = 0
    threads_end: int = 0
    threads_after_warmup: int = 0
    threads_after_cycles: int = 0
    concurrent_s: float = 0.0
    cycles_s: float = 0.0
    seconds: float = 0.0
    skipped: str | None = None
    failures: list[str] = dataclasses.field(default_factory=list)
    first_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


# -- comparison ------------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """Bitwise equality of two results: arrays by shape, dtype and bytes; dataclasses field by field."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
                and a.tobytes() == b.tobytes())
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return type(a) is type(b) and a == b


# -- images and bundle -----------------------------------------------------------------------

def soak_images(bundle: Path, count: int, seed: int) -> list[np.ndarray]:
    """Source images the bundle accepts: the family's synthetic ones, or noise where training is not installed."""
    manifest = read_manifest(bundle)
    try:
        from training import get_training_family

        part = get_training_family(manifest.family)
        images, _ = part.synthetic_samples(part.check_variant(manifest.variant), count, seed)
        return [np.ascontiguousarray(image) for image in images]
    except ImportError:  # an edge box without torch: the soak needs valid inputs, not meaningful ones
        pre = manifest.preprocess
        low, high = pre.source_range
        channels = min(c for c in pre.accepted_channels if c > max(pre.read_channels))
        rng = np.random.default_rng(seed)
        return [rng.uniform(low, high, (channels, pre.height, pre.width)).astype(np.float32) for _ in range(count)]


def build_bundle(family: str, out: Path) -> Path:
    """The test-suite's tiny trained bundle of ``family`` (full-image graph, every precision)."""
    from training.smoke import build_tiny_bundle

    return build_tiny_bundle(family, out, layers=("full",), precisions=("fp32", "fp16", "int8"))


# -- one backend x precision -----------------------------------------------------------------

def _mib(value: int) -> float:
    return round(value / MIB, 1)


def _slope_per_100(values: Sequence[int]) -> float | None:
    """Theil-Sen slope (median of the pairwise slopes) x 100 in MiB: a short burst cannot move it."""
    if len(values) < 2:
        return None
    y = np.asarray(values, dtype=np.float64)
    i, j = np.triu_indices(len(y), k=1)
    return round(float(np.median((y[j] - y[i]) / (j - i))) * 100 / MIB, 2)


def soak_one(bundle: Path, backend: str, precision: str, images: list[np.ndarray],
             args: argparse.Namespace) -> Row:
    """Steps 1-4 of the module docstring for one backend and precision."""
    row = Row(backend, precision, threads=args.threads, runs=args.runs)
    options = {"backend": backend, "precision": precision, "device": "cpu", "threads": args.intra_threads}
    gc.collect()
    start = Sample.take(trim=True)
    row.rss_start_mib, row.fds_start, row.threads_start = _mib(start.rss), start.fds, start.threads
    began = time.perf_counter()
    lock = threading.Lock()

    def failed(exc: BaseException) -> None:
        with lock:
            row.errors += 1
            row.first_error = row.first_error or f"{type(exc).__name__}: {exc}"

    with Sampler(args.sample_interval) as sampler:
        try:
            session = runtime.Session(bundle, **options)
        except ImportError as exc:
            row.skipped = str(exc).split(";")[0]
            return row
        with session:
            reference = [session.run(image) for image in images]
            barrier = threading.Barrier(args.threads)

            def worker(index: int) -> None:
                barrier.wait()
                for run in range(args.runs):
                    which = (index + run) % len(images)
                    try:
                        result = session.run(images[which])
                    except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
                        failed(exc)
                        continue
                    if not same(result, reference[which]):
                        with lock:
                            row.mismatches += 1

            t0 = time.perf_counter()
            workers = [threading.Thread(target=worker, args=(i,), name=f"soak-{i}") for i in range(args.threads)]
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join()
            row.concurrent_s = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        rss: list[int] = []
        for cycle in range(args.cycles):
            which = cycle % len(images)
            try:
                with runtime.Session(bundle, **options) as fresh:
                    result = fresh.run(images[which])
                if not same(result, reference[which]):
                    row.cycle_mismatches += 1
            except Exception as exc:  # noqa: BLE001
                failed(exc)
            if cycle + 1 >= args.warmup:
                sample = sampler.note(Sample.take(trim=True))
                rss.append(sample.rss)
                if cycle + 1 == args.warmup:
                    row.fds_after_warmup, row.threads_after_warmup = sample.fds, sample.threads
        row.cycles = args.cycles
        row.cycles_s = round(time.perf_counter() - t0, 1)
        if rss:  # the sampler's thread alive, as at the warm-up reading
            row.fds_after_cycles, row.threads_after_cycles = sample.fds, sample.threads
    gc.collect()
    end = sampler.note(Sample.take(trim=True))  # after the sampler's thread has ended, like ``start`` before it

    row.seconds = round(time.perf_counter() - began, 1)
    row.rss_end_mib, row.rss_peak_mib = _mib(end.rss), _mib(sampler.peak)
    row.fds_end, row.threads_end = end.fds, end.threads
    row.rss_growth_mib_per_100 = _slope_per_100(rss)
    row.rss_per_cycle_mib = [_mib(value) for value in rss]
    _judge(row, args)
    return row


def _judge(row: Row, args: argparse.Namespace) -> None:
    if row.mismatches:
        row.failures.append(f"{row.mismatches} of {row.threads * row.runs} concurrent results differ")
    if row.cycle_mismatches:
        row.failures.append(f"{row.cycle_mismatches} of {row.cycles} fresh-session results differ")
    if row.errors:
        row.failures.append(f"{row.errors} runs failed (first: {row.first_error})")
    if row.cycles > args.warmup:
        if row.fds_after_cycles > row.fds_after_warmup:
            row.failures.append(f"open fds grew from {row.fds_after_warmup} to {row.fds_after_cycles} "
                                f"over {row.cycles - args.warmup} cycles")
        if row.threads_after_cycles > row.threads_after_warmup:
            row.failures.append(f"threads grew from {row.threads_after_warmup} to {row.threads_after_cycles} "
                                f"over {row.cycles - args.warmup} cycles")
        growth = row.rss_growth_mib_per_100
        if growth is not None and growth > args.max_rss_growth_mib:
            row.failures.append(f"RSS grows {growth:.1f} MiB per 100 cycles (limit {args.max_rss_growth_mib})")


# -- report ----------------------------------------------------------------------------------

_COLUMNS = ("backend", "precision", "threads x runs", "mismatches", "cycles", "RSS start/end/peak MiB",
            "RSS/100 cyc MiB", "fds start/end", "threads start/end", "seconds", "status")


def _cells(row: Row) -> tuple[str, ...]:
    if row.skipped:
        return (row.backend, row.precision, "-", "-", "-", "-", "-", "-", "-", "-", f"skipped: {row.skipped}")
    growth = "-" if row.rss_growth_mib_per_100 is None else f"{row.rss_growth_mib_per_100:+.2f}"
    return (row.backend, row.precision, f"{row.threads} x {row.runs}",
            f"{row.mismatches} + {row.cycle_mismatches}" + (f" ({row.errors} err)" if row.errors else ""),
            str(row.cycles), f"{row.rss_start_mib:.0f} / {row.rss_end_mib:.0f} / {row.rss_peak_mib:.0f}", growth,
            f"{row.fds_start} / {row.fds_end}", f"{row.threads_start} / {row.threads_end}", f"{row.seconds:.0f}",
            "ok" if row.ok else "FAIL")


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (mismatches: concurrent + fresh-session)."""
    cells = [_COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """CPU, cores and engine versions, for the report."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    versions = {}
    for package in ("onnxruntime", "openvino"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "isa": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "amx_tile"}),
            "python": platform.python_version(), **versions}


# -- CLI -------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, metavar="DIR",
                        help="an exported bundle to soak (default: the test-suite's tiny trained bundle of "
                             "--family, built in a temporary folder and removed afterwards)")
    parser.add_argument("--family", default=runtime.list_families()[0], choices=runtime.list_families(),
                        help="family of the tiny bundle built when --bundle is not given (default %(default)s)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated backends; those not installed are reported as skipped "
                             "(default %(default)s)")
    parser.add_argument("--precisions", default="all",
                        help="comma-separated precisions of the full-image graph, or 'all' in the bundle "
                             "(default %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one session (default %(default)s)")
    parser.add_argument("--runs", type=int, default=50, help="runs per thread (default %(default)s)")
    parser.add_argument("--cycles", type=int, default=60,
                        help="Session create -> run -> close cycles (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="growth of RSS, fds and threads is measured from this cycle on, once engine and "
                             "allocator caches have filled (default %(default)s)")
    parser.add_argument("--images", type=int, default=2,
                        help="distinct images the runs rotate through (default %(default)s)")
    parser.add_argument("--intra-threads", type=int, default=None, metavar="N",
                        help="intra-op threads of each session (default: the Session's, the physical cores)")
    parser.add_argument("--max-rss-growth-mib", type=float, default=DEFAULT_MAX_RSS_GROWTH_MIB, metavar="MIB",
                        help="fail above this RSS growth per 100 cycles after warm-up (default %(default)s)")
    parser.add_argument("--sample-interval", type=float, default=0.1, metavar="S",
                        help="seconds between background samples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images (default %(default)s)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="also write the rows, the settings and the machine as JSON to FILE")
    args = parser.parse_args(argv)
    for name in ("threads", "runs", "images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.cycles < 0 or args.sample_interval <= 0:
        parser.error("--cycles must be >= 0 and --sample-interval > 0")
    if args.cycles and not 1 <= args.warmup < args.cycles:
        parser.error(f"--warmup ({args.warmup}) must be at least 1 and below --cycles ({args.cycles})")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown or not args.backends:
        parser.error(f"--backends: unknown {unknown}; expected some of {list(BACKENDS)}")
    if args.bundle is not None and not (args.bundle / "manifest.json").is_file():
        parser.error(f"--bundle {args.bundle}: no manifest.json there; pass a bundle written by export.build")
    if args.out is not None and not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: folder {args.out.parent} does not exist")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").is_file():
        print("error: the soak reads /proc/self (Linux only)", file=sys.stderr)
        return 2
    began = time.perf_counter()
    with ExitStack() as stack:
        bundle = args.bundle
        if bundle is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
            print(f"building the tiny {args.family} bundle in {tmp} ...", file=sys.stderr, flush=True)
            bundle = build_bundle(args.family, tmp / args.family)
        available = read_manifest(bundle).precisions("full")
        precisions = available if args.precisions == "all" else [p.strip() for p in args.precisions.split(",")]
        missing = [p for p in precisions if p not in available]
        if missing:
            print(f"error: {bundle} has no full-image graph in {missing}; it has {available}", file=sys.stderr)
            return 2
        images = soak_images(bundle, args.images, args.seed)
        rows: list[Row] = []
        for backend in args.backends:
            for precision in precisions:
                print(f"[{backend} {precision}] {args.threads} threads x {args.runs} runs, {args.cycles} cycles ...",
                      file=sys.stderr, flush=True)
                row = soak_one(bundle, backend, precision, images, args)
                rows.append(row)
                if row.skipped:
                    print(f"[{backend}] skipped: {row.skipped}", file=sys.stderr, flush=True)
                    break
                print(f"[{backend} {precision}] {'ok' if row.ok else 'FAIL'} in {row.seconds:.0f} s "
                      f"(concurrent {row.concurrent_s:.0f} s, cycles {row.cycles_s:.0f} s)", file=sys.stderr,
                      flush=True)
    wall = round(time.perf_counter() - began, 1)
    ran = [row for row in rows if not row.skipped]
    ok = bool(ran) and all(row.ok for row in ran)
    host = machine()
    print(f"\nsoak of {bundle if args.bundle else f'the tiny {args.family} bundle'} on {host['cpu']} "
          f"({host['cpus']} CPUs; {', '.join(host['isa'])}); mismatches = concurrent + fresh-session; "
          f"RSS growth after {args.warmup} warm-up cycles\n")
    print(format_table(rows))
    for row in ran:
        for failure in row.failures:
            print(f"FAIL {row.backend} {row.precision}: {failure}")
    if args.out is not None:
        report = {"ok": ok, "wall_s": wall, "machine": host,
                  "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "rows": [{**dataclasses.asdict(row), "ok": row.ok} for row in rows]}
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))
        print(f"wrote {args.out}")
    print(f"{'passed' if ok else 'FAILED'} in {wall:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
