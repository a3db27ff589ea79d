"""Train a model family: ``python -m training.train --family brn (--data DIR | --synthetic) --out DIR``.

Writes ``DIR/last.pth`` (every epoch, with optimizer state for ``--resume``) and
``DIR/best.pth`` (best pixel AUROC so far), both plain dicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from runtime._dataset import training_images
from runtime._errors import SdkError
from runtime._registry import get_family
from training.checkpoint import library_versions, load_checkpoint, save_checkpoint
from training.data import DefectPatchDataset
from training.defects import DefectConfig
from training.evaluate import evaluate_network
from training.losses import FocalLoss, GammaSchedule

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every knob of a training run; stored in the checkpoint as ``train_args``."""

    out: Path
    family: str = "brn"
    data: Path | None = None
    synthetic: bool = False
    image_type: str = "strip"
    base_width: int = 64
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: one sample per training image and epoch
    batch_size: int = 16
    lr: float = 1e-3
    alpha: float = 0.75
    gamma_start: float = 1.0
    gamma_end: float = 3.0
    lr_milestones: tuple[float, float] = (0.8, 0.9)
    lr_factor: float = 0.2
    num_defects_range: tuple[int, int] = (3, 8)
    cache_size: int = 0
    seed: int = 0
    eval_every: int = 1
    threads: int | None = None
    resume: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainResult:
    last: Path
    best: Path
    metrics: dict[str, float]
    best_epoch: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def _validate(config: TrainConfig) -> None:
    if (config.data is None) == (not config.synthetic):
        raise SdkError("give exactly one of --data DIR or --synthetic")
    if config.data is not None and not Path(config.data).is_dir():
        raise SdkError(f"dataset folder not found: {config.data}")
    lo, hi = config.num_defects_range
    if not 2 <= lo <= hi:  # one Target-only defect plus at least one that tells Ref1 from Ref2
        raise SdkError(f"--num-defects-range must be 2 <= MIN <= MAX, got {lo} {hi}")
    for name in ("epochs", "batch_size", "base_width", "eval_every"):
        if getattr(config, name) < 1:
            raise SdkError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise SdkError(f"--steps-per-epoch must be at least 1, got {config.steps_per_epoch}")


def _dataset_root(config: TrainConfig) -> Path:
    if config.data is not None:
        return Path(config.data)
    root = Path(config.out) / "data"
    if not (root / "train" / "good").is_dir():
        from training.make_dataset import make_dataset

        log.info("synthesising a dataset in %s", root)
        make_dataset(root, seed=config.seed, image_type=config.image_type)
    return root


def train(config: TrainConfig) -> TrainResult:
    """Train a network and write ``last.pth`` and ``best.pth`` into ``config.out``.

    Args:
        config: the run's settings (see :class:`TrainConfig`).

    Returns:
        Where the checkpoints are, the metrics of the best one and the per-step losses.

    Raises:
        SdkError: on bad settings or a dataset that cannot be read.

    Example:
        >>> train(TrainConfig(out=Path("runs/brn"), synthetic=True, base_width=16, epochs=5))
    """
    _validate(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    family = get_family(config.family)
    image_type = family.image_type(config.image_type)
    root = _dataset_root(config)
    paths = training_images(root)
    select_split = "valid" if (root / "valid").is_dir() else "test"
    steps = config.steps_per_epoch or max(1, math.ceil(len(paths) / config.batch_size))

    arch = {**family.default_config, "base_width": config.base_width}
    network = family.build_network(arch)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    milestones = sorted({max(1, int(config.epochs * m)) for m in config.lr_milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=config.lr_factor)
    loss_fn = FocalLoss(alpha=config.alpha)
    schedule = GammaSchedule(config.gamma_start, config.gamma_end)
    dataset = DefectPatchDataset(paths, image_type, length=steps * config.batch_size, seed=config.seed,
                                 defects=DefectConfig(num_defects_range=tuple(config.num_defects_range)),
                                 cache_size=config.cache_size)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=0)

    start_epoch, best_metric, best_epoch, best_metrics = 0, -1.0, -1, {}
    if config.resume and (out / "last.pth").is_file():
        state = load_checkpoint(out / "last.pth")
        network.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        scheduler.load_state_dict(state["scheduler_state_dict"])
        torch.set_rng_state(state["torch_rng_state"])
        start_epoch = state["epoch"] + 1
        best_metric = state.get("best_pixel_auroc", -1.0)
        best_epoch = state.get("best_epoch", -1)
        best_metrics = state.get("best_metrics", {})
        log.info("resuming at epoch %d", start_epoch)

    base = {"family": family.name, "arch": arch, "img_height": image_type.patch_height,
            "img_width": image_type.patch_width, "image_type": image_type.name, "seed": config.seed,
            "train_args": config.to_dict(), "versions": library_versions()}
    losses: list[float] = []
    total_steps = config.epochs * steps
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        network.train()
        dataset.set_epoch(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=None if config.progress else True,
                   leave=False, dynamic_ncols=True)
        for step, (x, mask) in enumerate(bar):
            loss_fn.gamma = schedule((epoch * steps + step) / total_steps)
            loss = loss_fn(network(x), mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}", gamma=f"{loss_fn.gamma:.2f}")
        scheduler.step()

        metrics: dict[str, float] = {}
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            metrics = evaluate_network(network, root, image_type.tiling(), split=select_split)
            log.info("epoch %d: %s", epoch + 1, metrics)
            if metrics["pixel_auroc"] > best_metric:
                best_metric, best_epoch, best_metrics = metrics["pixel_auroc"], epoch, metrics
                save_checkpoint(out / "best.pth", {**base, "epoch": epoch, "metrics": metrics,
                                                   "model_state_dict": network.state_dict()})
        save_checkpoint(out / "last.pth", {
            **base, "epoch": epoch, "metrics": metrics, "model_state_dict": network.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(), "scheduler_state_dict": scheduler.state_dict(),
            "torch_rng_state": torch.get_rng_state(), "best_pixel_auroc": best_metric,
            "best_epoch": best_epoch, "best_metrics": best_metrics})

    if select_split != "test" and (out / "best.pth").is_file():
        from training.checkpoint import build_from_checkpoint

        _, best_net = build_from_checkpoint(load_checkpoint(out / "best.pth"))
        best_metrics = evaluate_network(best_net, root, image_type.tiling(), split="test")
    return TrainResult(out / "last.pth", out / "best.pth", best_metrics, best_epoch,
                       time.perf_counter() - started, losses)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--family", default="brn")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="dataset root in the SDK layout (train/good, test/...)")
    src.add_argument("--synthetic", action="store_true", help="synthesise a dataset into OUT/data first")
    p.add_argument("--out", type=Path, required=True, help="folder for last.pth and best.pth")
    p.add_argument("--image-type", "--image_type", dest="image_type", default="strip",
                   help="strip (976x176, 128x128 patches), square or mvtec")
    p.add_argument("--base-width", type=int, default=64, help="UNet base width (16 for a light variant)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    # The underscore spellings are the reference training script's; both work.
    p.add_argument("--num-defects-range", "--num_defects_range", dest="num_defects_range", type=int, nargs=2,
                   default=(3, 8), metavar=("MIN", "MAX"), help="defects per defective patch (default 3 8)")
    p.add_argument("--cache-size", "--cache_size", dest="cache_size", type=int, default=0,
                   help="decoded images kept in an LRU cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate (and maybe save best.pth) every N epochs")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(
        out=args.out, family=args.family, data=args.data, synthetic=args.synthetic, image_type=args.image_type,
        base_width=args.base_width, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size, lr=args.lr, num_defects_range=tuple(args.num_defects_range),
        cache_size=args.cache_size, seed=args.seed, eval_every=args.eval_every, threads=args.threads,
        resume=args.resume, progress=not args.no_progress)
    try:
        result = train(config)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"trained in {result.seconds:.0f} s; best epoch {result.best_epoch + 1}: "
          f"pixel AUROC {m.get('pixel_auroc', float('nan')):.4f}, image AUROC {m.get('image_auroc', float('nan')):.4f}")
    print(f"checkpoints: {result.best} (best), {result.last} (last)")
    print(f"next: python -m export.build --checkpoint {result.best} --out {Path(config.out) / 'bundle'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
