"""Checkpoints of the original project (DRAEM's discriminative UNet, no family/arch/variant keys): import, export,
resume; and the original scripts' training flags."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import training.train as train_module
from runtime.core import ModelLoadError
from training import get_training_family
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.families.brn.network import build_network

WIDTH = 4
EPOCH = 2  # the original's last epoch (0-based, as its trainer saved it)


# -- an independent DRAEM-shaped network, written as DRAEM's DiscriminativeSubNetwork is ----------------------


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                         nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _EncoderDiscriminative(nn.Module):
    def __init__(self, in_channels: int, base_width: int) -> None:
        super().__init__()
        w = base_width
        self.block1 = _block(in_channels, w)
        self.mp1 = nn.Sequential(nn.MaxPool2d(2))
        self.block2 = _block(w, w * 2)
        self.mp2 = nn.Sequential(nn.MaxPool2d(2))
        self.block3 = _block(w * 2, w * 4)
        self.mp3 = nn.Sequential(nn.MaxPool2d(2))
        self.block4 = _block(w * 4, w * 8)
        self.mp4 = nn.Sequential(nn.MaxPool2d(2))
        self.block5 = _block(w * 8, w * 8)
        self.mp5 = nn.Sequential(nn.MaxPool2d(2))
        self.block6 = _block(w * 8, w * 8)

    def forward(self, x):
        b1 = self.block1(x)
        b2 = self.block2(self.mp1(b1))
        b3 = self.block3(self.mp2(b2))
        b4 = self.block4(self.mp3(b3))
        b5 = self.block5(self.mp4(b4))
        b6 = self.block6(self.mp5(b5))
        return b1, b2, b3, b4, b5, b6


class _DecoderDiscriminative(nn.Module):
    def __init__(self, base_width: int, out_channels: int) -> None:
        super().__init__()
        w = base_width
        self.up_b = _up(w * 8, w * 8)
        self.db_b = _block(w * (8 + 8), w * 8)
        self.up1 = _up(w * 8, w * 4)
        self.db1 = _block(w * (4 + 8), w * 4)
        self.up2 = _up(w * 4, w * 2)
        self.db2 = _block(w * (2 + 4), w * 2)
        self.up3 = _up(w * 2, w)
        self.db3 = _block(w * (2 + 1), w)
        self.up4 = _up(w, w)
        self.db4 = _block(w * 2, w)
        self.fin_out = nn.Sequential(nn.Conv2d(w, out_channels, kernel_size=3, padding=1))

    def forward(self, b1, b2, b3, b4, b5, b6):
        db_b = self.db_b(torch.cat((self.up_b(b6), b5), dim=1))
        db1 = self.db1(torch.cat((self.up1(db_b), b4), dim=1))
        db2 = self.db2(torch.cat((self.up2(db1), b3), dim=1))
        db3 = self.db3(torch.cat((self.up3(db2), b2), dim=1))
        db4 = self.db4(torch.cat((self.up4(db3), b1), dim=1))
        return self.fin_out(db4)


class _DiscriminativeSubNetwork(nn.Module):
    def __init__(self, in_channels: int = 3, out_channels: int = 2, base_channels: int = 64) -> None:
        super().__init__()
        self.encoder_segment = _EncoderDiscriminative(in_channels, base_channels)
        self.decoder_segment = _DecoderDiscriminative(base_channels, out_channels)

    def forward(self, x):
        return self.decoder_segment(*self.encoder_segment(x))


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics (so that a swapped tensor changes the output)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(0.5 + values if name.endswith("running_var") else values - 0.5)
    return module.eval()


def _draem() -> _DiscriminativeSubNetwork:
    return _randomised(_DiscriminativeSubNetwork(3, 2, WIDTH), seed=1)


def _original(weights: dict, **changes) -> dict:
    """A checkpoint as the original trainer saved it: these keys only."""
    checkpoint = {"model_state_dict": weights, "img_height": 128, "img_width": 128, "image_type": "strip",
                  "epoch": EPOCH, "seed": 7}
    checkpoint.update(changes)
    return {k: v for k, v in checkpoint.items() if v is not None}


def _save(tmp_path: Path, checkpoint: dict, name: str = "theirs.pth") -> Path:
    torch.save(checkpoint, tmp_path / name)
    return tmp_path / name


# Written here from DRAEM's module names, not taken from the importer.
_RENAMES = [(r"^encoder\.blocks\.(\d)\.", lambda m: f"encoder_segment.block{int(m[1]) + 1}."),
            (r"^decoder\.ups\.0\.", "decoder_segment.up_b."), (r"^decoder\.ups\.(\d)\.", r"decoder_segment.up\1."),
            (r"^decoder\.merges\.0\.", "decoder_segment.db_b."),
            (r"^decoder\.merges\.(\d)\.", r"decoder_segment.db\1."),
            (r"^decoder\.head\.", "decoder_segment.fin_out.0.")]


def _draem_name(ours: str) -> str:
    for pattern, replacement in _RENAMES:
        theirs, count = re.subn(pattern, replacement, ours)
        if count:
            return theirs
    raise AssertionError(f"no DRAEM name for {ours}")


# -- import --------------------------------------------------------------------------------------------------


def test_our_names_renamed_are_exactly_draems():
    ours = build_network({"base_width": WIDTH}).state_dict()
    draem = _draem().state_dict()
    renamed = {_draem_name(k): tuple(v.shape) for k, v in ours.items()}
    assert renamed == {k: tuple(v.shape) for k, v in draem.items()}


def test_a_checkpoint_renamed_from_our_network_loads_and_gives_identical_outputs(tmp_path, caplog):
    source = _randomised(build_network({"base_width": WIDTH}), seed=2)
    weights = {_draem_name(k): v for k, v in source.state_dict().items()}
    path = _save(tmp_path, _original(weights))
    with caplog.at_level(logging.INFO, logger="training.checkpoint"):
        checkpoint = load_checkpoint(path)
    assert "imported checkpoint" in caplog.text and "draem" in caplog.text
    assert (checkpoint["family"], checkpoint["variant"], checkpoint["imported_from"]) == ("brn", "strip", "draem")
    assert checkpoint["arch"] == {"in_channels": 3, "out_channels": 2, "base_width": WIDTH}
    assert (checkpoint["epoch"], checkpoint["seed"], checkpoint["metrics"], checkpoint["train_args"]) == \
        (EPOCH, 7, {}, {})
    _, network = build_from_checkpoint(checkpoint)
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(network(x), source(x))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_an_independent_draem_network_gives_identical_outputs(tmp_path, prefix):
    draem = _draem()
    weights = {prefix + k: v for k, v in draem.state_dict().items()}
    checkpoint = load_checkpoint(_save(tmp_path, _original(weights, image_type="square", img_height=256,
                                                           img_width=256)))
    assert checkpoint["variant"] == "square" and checkpoint["img_height"] == 256
    _, network = build_from_checkpoint(checkpoint)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(network(x), draem(x), rtol=0, atol=1e-6)


def test_build_from_checkpoint_imports_a_raw_dict_and_batchnorm_counters_may_be_absent():
    draem = _draem()
    weights = {k: v for k, v in draem.state_dict().items() if not k.endswith("num_batches_tracked")}
    family, network = build_from_checkpoint(_original(weights))
    assert family.name == "brn"
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(network(x), draem(x), rtol=0, atol=1e-6)


def _weights(**changes):
    weights = dict(_draem().state_dict())
    for name, value in changes.items():
        if value is None:
            del weights[name]
        else:
            weights[name] = value
    return weights


@pytest.mark.parametrize(("checkpoint", "match"), [
    (_original(_weights(**{"decoder_segment.db2.1.weight": None})),
     r"missing tensor decoder_segment\.db2\.1\.weight \(ours: decoder\.merges\.2\.1\.weight\), expected shape \(8,\)"),
    (_original(_weights(**{"encoder_segment.block3.0.weight": torch.zeros(16, 8, 1, 1)})),
     r"tensor encoder_segment\.block3\.0\.weight \(ours: encoder\.blocks\.2\.0\.weight\) has shape \(16, 8, 1, 1\), "
     r"expected \(16, 8, 3, 3\)"),
    (_original(_weights(**{"decoder_segment.fin_out.1.weight": torch.zeros(2)})),
     r"unexpected tensor decoder_segment\.fin_out\.1\.weight \(no brn counterpart; shape \(2,\)\)"),
    (_original(_weights(**{"encoder_segment.block1.6.weight": torch.zeros(4)})),
     r"unexpected tensor encoder_segment\.block1\.6\.weight \(ours: encoder\.blocks\.0\.6\.weight, which the brn "
     r"network does not have"),
    (_original(_weights(**{"encoder_segment.block1.0.weight": None})),
     r"tensor encoder_segment\.block1\.0\.weight \(ours: encoder\.blocks\.0\.0\.weight\) is missing"),
    (_original(_weights(), image_type="hexagon"), r"image_type 'hexagon'; expected one of \['mvtec', 'square'"),
    (_original(_weights(), image_type="square"), "patch 128x128 does not match image type 'square'"),
    (_original(_weights(), epoch=None), r"lacks keys \['epoch'\]"),
], ids=["missing", "shape", "extra-unmapped", "extra-mapped", "no-first-conv", "image-type", "patch", "no-epoch"])
def test_foreign_checkpoints_that_do_not_fit_are_refused_by_name(tmp_path, checkpoint, match):
    path = _save(tmp_path, checkpoint)
    with pytest.raises(ModelLoadError, match=match) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_an_unknown_layout_names_what_is_missing_and_the_layouts_understood(tmp_path):
    path = _save(tmp_path, {"model_state_dict": {"backbone.conv.weight": torch.zeros(1)}, "epoch": 1})
    with pytest.raises(ModelLoadError, match=r"lacks keys \['family', 'arch', 'seed'\].*brn: the original scripts' "
                                             r"DRAEM discriminative UNet"):
        load_checkpoint(path)


def test_an_imported_checkpoint_exports(tmp_path):
    from runtime.core import read_manifest
    from training.smoke import export_tiny

    path = _save(tmp_path, _original(_draem().state_dict()))
    bundle = export_tiny(path, tmp_path / "bundle", precisions=("fp32",)).bundle
    manifest = read_manifest(bundle).raw
    assert manifest["family"] == "brn" and manifest["variant"] == "strip"
    assert manifest["arch"]["base_width"] == WIDTH
    assert (manifest["checkpoint"]["epoch"], manifest["checkpoint"]["seed"]) == (EPOCH, 7)


# -- resume --------------------------------------------------------------------------------------------------


def _resume_argv(path: Path, out: Path, dataset: Path, epochs: int) -> list[str]:
    # The original scripts' spellings throughout: --training_dataset_path at train/good, --checkpoint_path, --bs.
    return ["--resume", str(path), "--training_dataset_path", str(dataset / "train" / "good"),
            "--checkpoint_path", str(out), "--bs", "2", "--base-width", str(WIDTH), "--epochs", str(epochs),
            "--steps-per-epoch", "1", "--lr", "1e-9", "--device", "cpu", "--workers", "0", "--no-progress",
            "--no-tensorboard", "--no-report", "--save-every", "0"]


def test_training_resumes_from_an_imported_checkpoint_after_its_epoch(brn_dataset, tmp_path, caplog):
    draem = _draem()
    theirs = draem.state_dict()
    path = _save(tmp_path, _original(theirs))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="training.engine"):
        assert train_module.main(_resume_argv(path, out, brn_dataset, epochs=EPOCH + 2)) == 0
    assert "optimiser starts afresh" in caplog.text
    last = torch.load(out / "last.pth", weights_only=True)
    assert last["epoch"] == EPOCH + 1 and last["position"] == {"epoch": EPOCH + 2, "step": 0}
    assert last["train_args"]["data"] == str(brn_dataset)
    assert last["scheduler_state_dict"]["last_epoch"] == EPOCH + 2, "the schedule went on from their epoch"
    assert torch.load(out / "best.pth", weights_only=True)["epoch"] == EPOCH + 1
    # One step at lr 1e-9 leaves the weights where theirs were (a fresh network would be far away).
    ours = last["model_state_dict"]
    conv = "encoder.blocks.2.0.weight"
    assert (ours[conv] - theirs["encoder_segment.block3.0.weight"]).abs().max() < 1e-6
    assert (ours["decoder.head.weight"] - theirs["decoder_segment.fin_out.0.weight"]).abs().max() < 1e-6


def test_resuming_an_imported_checkpoint_needs_more_epochs(brn_dataset, tmp_path, capsys):
    path = _save(tmp_path, _original(_draem().state_dict()))
    assert train_module.main(_resume_argv(path, tmp_path / "run", brn_dataset, epochs=EPOCH + 1)) == 2
    assert "it was trained for 3 epoch(s) and --epochs is 3" in capsys.readouterr().err


# -- the original scripts' flags -----------------------------------------------------------------------------


def _config(argv: list[str]):
    family = get_training_family("brn")
    return train_module._config_from_args(train_module._parser(family).parse_args(argv), family)


@pytest.mark.parametrize("dataset", [("train", "good"), ()], ids=["train-good", "root"])
def test_the_original_flags_give_the_same_config_as_ours(tmp_path, dataset):
    given = tmp_path.joinpath(*dataset)
    theirs = _config(["--training_dataset_path", str(given), "--checkpoint_path", str(tmp_path / "o"), "--bs", "8",
                      "--gpu_id", "1", "--epochs", "5", "--lr", "0.01", "--seed", "3"])
    ours = _config(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--batch-size", "8", "--device", "cuda:1",
                    "--epochs", "5", "--lr", "0.01", "--seed", "3"])
    assert dataclasses.asdict(theirs) == dataclasses.asdict(ours)
    assert (theirs.data, theirs.device, theirs.batch_size) == (tmp_path, "cuda:1", 8)


@pytest.mark.parametrize(("argv", "match"), [
    (["--gpu_id", "0", "--device", "cpu"], "--gpu_id and --device set the same thing"),
    (["--training_dataset_path", "x", "--data", "x"], "--training_dataset_path and --data set the same thing"),
    (["--gpu_id", "-1", "--data", "x"], "--gpu_id must be an integer >= 0, got -1"),
])
def test_an_original_flag_with_ours_for_the_same_setting_is_refused(tmp_path, capsys, argv, match):
    assert train_module.main([*argv, "--out", str(tmp_path / "o"), "--epochs", "1"]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_original_flags_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        train_module.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--bs", "--gpu_id", "--training_dataset_path", "--checkpoint_path"):
        assert flag in text
    assert "coming from the original scripts" in text
