"""Checkpoints: validation on load, checkpoints from before the ``variant`` key, atomic saves, rebuilding."""

from __future__ import annotations

import pytest
import torch

from runtime.core import ModelLoadError
from training.checkpoint import REQUIRED_KEYS, build_from_checkpoint, load_checkpoint, save_checkpoint
from training.families.brn.network import build_network


def _brn_checkpoint(**changes):
    torch.manual_seed(0)
    arch = {"in_channels": 3, "out_channels": 2, "base_width": 2}
    checkpoint = {"family": "brn", "variant": "strip", "arch": arch,
                  "model_state_dict": build_network(arch).state_dict(), "img_height": 128, "img_width": 128,
                  "image_type": "strip", "epoch": 0, "seed": 0}
    checkpoint.update(changes)
    return {k: v for k, v in checkpoint.items() if v is not None}


def test_load_checkpoint_names_missing_keys(tmp_path):
    torch.save({"family": "brn"}, tmp_path / "x.pth")
    with pytest.raises(ModelLoadError, match=r"lacks keys \['model_state_dict', 'arch', 'epoch', 'seed'\]"):
        load_checkpoint(tmp_path / "x.pth")
    assert set(REQUIRED_KEYS) == {"family", "model_state_dict", "arch", "epoch", "seed"}


def test_load_checkpoint_names_the_family_keys_it_lacks(tmp_path):
    save_checkpoint(tmp_path / "x.pth", _brn_checkpoint(img_height=None, img_width=None))
    with pytest.raises(ModelLoadError, match=r"lacks keys \['img_height', 'img_width'\]"):
        load_checkpoint(tmp_path / "x.pth")


def test_checkpoint_from_before_the_variant_key_still_loads(tmp_path):
    save_checkpoint(tmp_path / "old.pth", _brn_checkpoint(variant=None, image_type="square", img_height=256,
                                                          img_width=256))
    checkpoint = load_checkpoint(tmp_path / "old.pth")
    assert checkpoint["variant"] == "square"
    family, network = build_from_checkpoint(checkpoint)
    assert family.name == "brn" and not network.training


@pytest.mark.parametrize(("changes", "match"), [
    ({"variant": None, "image_type": "hexagon"}, r"image_type 'hexagon'; expected one of \['mvtec', 'square'"),
    ({"variant": None, "img_height": 64}, "patch 64x128 does not match image type 'strip'"),
    ({"variant": "hexagon"}, r"variant 'hexagon'; family 'brn' knows \['strip'"),
])
def test_inconsistent_checkpoints_are_refused(tmp_path, changes, match):
    save_checkpoint(tmp_path / "x.pth", _brn_checkpoint(**changes))
    with pytest.raises(ModelLoadError, match=match):
        load_checkpoint(tmp_path / "x.pth")


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path):
    checkpoint = _brn_checkpoint()
    checkpoint["arch"] = {**checkpoint["arch"], "base_width": 3}
    with pytest.raises(ModelLoadError, match="weights do not fit the brn network"):
        build_from_checkpoint(checkpoint)


def test_unknown_architecture_keys_are_refused():
    with pytest.raises(ModelLoadError, match=r"brn arch has unknown keys \['depth'\]"):
        build_from_checkpoint(_brn_checkpoint(arch={"depth": 5}))


@pytest.mark.parametrize(("content", "match"), [(b"not a checkpoint", "cannot read checkpoint"), (None, "not found")])
def test_unreadable_checkpoints_are_refused(tmp_path, content, match):
    path = tmp_path / "x.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=match):
        load_checkpoint(path)


def test_a_checkpoint_must_be_a_dict(tmp_path):
    torch.save([1, 2], tmp_path / "x.pth")
    with pytest.raises(ModelLoadError, match="holds a list, expected a dict"):
        load_checkpoint(tmp_path / "x.pth")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "last.pth"
    save_checkpoint(path, _brn_checkpoint(epoch=1))

    def crash(payload, file):
        open(file, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _brn_checkpoint(epoch=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1, "a failed save leaves the old checkpoint intact"
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"], "and no temporary file behind"
