"""``python -m training.predict``: a checkpoint's predictions, written exactly as ``runtime.infer`` writes a bundle's.

    python -m training.predict runs/brn/best.pth images/ extra.tiff --out predictions --visualize

Look at what a checkpoint finds before exporting it. The network runs in PyTorch
(CPU unless ``--device`` says otherwise) inside the export's full-image module of
its family (brn: the patches cut, run and stitched as the graph does), so the
images are read, the outputs decoded and the files written by the runtime's own
code (:func:`runtime.core.infer_files`): the same per-image files, the same
``summary.csv`` columns, the same ``--visualize`` figure as ``python -m
runtime.infer BUNDLE`` on the exported bundle, to compare file by file. An image
that lies in a labelled dataset of the family's layout (brn:
``<root>/test/<defect>/<stem>.tiff`` with ``<root>/ground_truth/<defect>/<stem>_mask.tiff``)
has its ground truth outlined on the figure.

It needs the ``export`` extra (the full-image modules live in ``export/families``).

Exit codes are ``runtime.infer``'s: 0 every input processed; 1 some inputs failed
(reported, listed in the summary); 2 bad usage, a checkpoint that cannot be loaded
or an output folder that cannot be written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from runtime.core import (InvalidInputError, Postprocess, Predictor, Preprocess, Result, RuntimeFamily, SdkError,
                          check_output_dir, get_family, infer_files, read_source, to_tensor)
from training.checkpoint import build_from_checkpoint, load_checkpoint

__all__ = ["CheckpointModel", "load_model", "main"]

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
#: the layer of the export whose module is the bundle's graph
_FULL = "full"


@dataclass
class CheckpointModel:
    """A checkpoint's network inside its family's full-image module: what the bundle's FP32 graph computes.

    Attributes:
        checkpoint: the ``.pth`` file.
        epoch: the checkpoint's epoch.
        family: the family's runtime part (reading, decoding, outputs).
        variant: the checkpoint's input geometry.
        mode: the full-image mode of the export family (brn: ``stitched`` or ``fcn``).
        preprocess: how an image becomes the module's input (the manifest's ``preprocess`` the export would write).
        postprocess: how its outputs are read.
        module: the full-image module, in eval mode, on ``device``.
        output_names: the module's outputs by name, in the order it returns them.
        device: where the module runs.
        threshold: the decision threshold; None: the family's default.

    Example:
        >>> model = load_model("runs/brn/best.pth")
        >>> model.run("image.tiff").score
        0.93
    """

    checkpoint: Path
    epoch: int
    family: RuntimeFamily
    variant: str
    mode: str
    preprocess: Preprocess
    postprocess: Postprocess
    module: nn.Module
    output_names: tuple[str, ...]
    device: torch.device
    threshold: float | None = None

    @torch.no_grad()
    def run(self, image: str | os.PathLike[str] | np.ndarray) -> Result:
        """One image -> the family's result, as ``runtime.Session.run`` returns it for the bundle.

        Args:
            image: a TIFF/PNG/JPEG path or a 3-D array (CHW or HWC) in the source range, read
                and checked as the runtime does (channels, colour order, size).

        Raises:
            InvalidInputError: an image the family's pre-processing does not accept.
        """
        source = str(image) if isinstance(image, (str, os.PathLike)) else "array"
        channels = read_source(image, self.preprocess, source=source, what=self.what)
        tensor, transform = to_tensor(channels, self.preprocess)
        outputs = self.module(torch.from_numpy(tensor[None]).to(self.device))
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        named = {name: out.detach().float().cpu().numpy() for name, out in zip(self.output_names, outputs)}
        return self.family.decode(named, [transform], self.postprocess, sources=[source],
                                  threshold=self.threshold)[0]

    @property
    def what(self) -> str:
        """What the expected image size belongs to, for messages (``"<family> <variant>"``)."""
        return f"{self.family.name} {self.variant}"

    def predictor(self) -> Predictor:
        """This model as the runtime CLI's loop takes it (:func:`runtime.core.infer_files`)."""
        return Predictor(self.family, self.preprocess, self.run, self.what,
                         f"{self.family.name} pytorch fp32 ({self.mode}) on {self.device}, "
                         f"{self.checkpoint.name} epoch {self.epoch}")


def load_model(checkpoint: str | Path, *, device: str = "cpu", mode: str | None = None,
               threshold: float | None = None) -> CheckpointModel:
    """Rebuild a checkpoint's network inside its family's full-image module, ready to run images.

    Args:
        checkpoint: a ``.pth`` file of ``training.train`` (read with ``weights_only``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present).
        mode: the family's full-image mode (``export.build --mode``); None: its default.
        threshold: the decision threshold in 0..1; None: the family's default.

    Returns:
        The :class:`CheckpointModel`.

    Raises:
        ModelLoadError: a missing, unreadable or invalid checkpoint.
        InvalidInputError: an unknown device or mode, a threshold outside 0..1.
        ImportError: the export extra is not installed.

    Example:
        >>> load_model("runs/brn/best.pth", mode="fcn").run(image).heatmap.shape == image.shape[1:]
        True
    """
    target = _device(device)
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise InvalidInputError(f"threshold must be a number in 0..1, got {threshold!r}")
    path = Path(checkpoint)
    payload = load_checkpoint(path)
    training_family, network = build_from_checkpoint(payload)
    variant = payload["variant"]
    exporter = _export_family(training_family.name)
    mode = exporter.modes[0] if mode is None else mode
    if mode not in exporter.modes:
        raise InvalidInputError(f"--mode {mode!r}: family {training_family.name!r} has the full-image modes "
                                f"{list(exporter.modes)}")
    layer = exporter.layer(network, _FULL, mode, variant)
    family = get_family(training_family.name)
    return CheckpointModel(checkpoint=path, epoch=int(payload["epoch"]), family=family, variant=variant, mode=mode,
                           preprocess=family.input_spec(variant), postprocess=family.postprocess_spec(variant),
                           module=layer.module.to(target).eval(),
                           output_names=tuple(spec.name for spec in layer.all_outputs), device=target,
                           threshold=None if threshold is None else float(threshold))


def _export_family(name: str) -> Any:
    """The export part of family ``name`` (imported here: the export extra is needed for this tool only)."""
    try:
        from export import get_export_family
    except ImportError as exc:
        raise ImportError(f"python -m training.predict runs the export's full-image modules and needs the export "
                          f"extra: pip install 'edge-vision-sdk[export]' ({exc})") from exc
    return get_export_family(name)


def _device(name: str) -> torch.device:
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise InvalidInputError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    if name.startswith("cuda"):
        if not available:
            raise InvalidInputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InvalidInputError(f"--device {name}: GPU {index} does not exist; this machine has "
                                    f"{torch.cuda.device_count()}")
    return torch.device(name)


# -- command line -----------------------------------------------------------------------------------------
def _threshold(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in 0..1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.predict",
        description="Write a checkpoint's predictions exactly as python -m runtime.infer writes a bundle's.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes what python -m runtime.infer writes for the exported bundle (same file names, same "
               "summary.csv columns),\nso the two folders compare file by file:\n\n"
               "  python -m training.predict runs/brn/best.pth images/ --out pred-pth --visualize\n"
               "  python -m export.build --checkpoint runs/brn/best.pth --out bundles/brn\n"
               "  python -m runtime.infer bundles/brn images/ --out pred-onnx --visualize\n\n"
               "Exit codes: 0 all processed, 1 some inputs failed, 2 bad usage or checkpoint, 130 interrupted.")
    p.add_argument("checkpoint", type=Path, help="a .pth file of python -m training.train (e.g. runs/brn/best.pth)")
    p.add_argument("inputs", type=Path, nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto (CUDA when present)")
    p.add_argument("--mode", default=None,
                   help="the family's full-image mode, as export.build --mode (default: the family's first; "
                        "brn: stitched or fcn)")
    p.add_argument("--threshold", type=_threshold, default=None,
                   help="decision threshold in 0..1 (default: the family's, as in the bundle's manifest)")
    p.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's)")
    p.add_argument("--visualize", action="store_true",
                   help="also write the family's figure per image (brn: <stem>_panels.png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line front end of :func:`load_model` and :func:`runtime.core.infer_files`.

    Returns:
        The exit code (see the module's docstring).
    """
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        # The output folder first: a bad --out must not cost loading the network.
        check_output_dir(args.out)
        if args.threads is not None:
            if args.threads < 1:
                raise InvalidInputError(f"--threads must be at least 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        model = load_model(args.checkpoint, device=args.device, mode=args.mode, threshold=args.threshold)
    except (SdkError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted while loading the checkpoint: no image processed, nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = infer_files(model.predictor(), args.inputs, args.out, visualize=args.visualize,
                       progress=not args.no_progress)
    if code != EXIT_INTERRUPTED:
        print(f"next: python -m export.build --checkpoint {args.checkpoint} --out BUNDLE, then python -m "
              f"runtime.infer BUNDLE ... --out DIR{' --visualize' if args.visualize else ''} to compare")
    return code


if __name__ == "__main__":
    sys.exit(main())
