"""Right-sizing: distillation losses, student widths, the recommendation rule, and a tiny run end to end."""

from __future__ import annotations

import json

import pytest
import torch

from runtime.core import InvalidInputError
from training import get_training_family
from training.rightsize import Row, main, recommend


def _row(name: str, ms: float, drop: float, agreement: float, precision: str = "fp32") -> Row:
    return Row(name, 8, "onnxruntime", precision, f"/b/{name}", 0.99 - drop, drop, agreement, ms, {})


def test_the_fastest_bundle_within_the_budget_is_recommended():
    rows = [_row("teacher", 100.0, 0.0, 1.0), _row("w16", 30.0, 0.004, 0.995),
            _row("w8", 10.0, 0.02, 1.0),  # fastest, but loses too much of the metric
            _row("w8", 12.0, 0.001, 0.98, "int8")]  # keeps the metric, but too many decisions change
    best, rule = recommend(rows, max_drop=0.005, min_agreement=0.99)
    assert best.name == "w16" and "0.005" in rule and "99%" in rule
    assert recommend(rows, max_drop=0.05, min_agreement=0.99)[0].name == "w8"  # a looser budget
    assert recommend(rows, max_drop=0.005, min_agreement=0.97)[0].precision == "int8"
    assert recommend([_row("w8", 10.0, 0.5, 0.5)], max_drop=0.005, min_agreement=0.99)[0] is None


def test_brn_distillation_is_the_task_loss_when_the_student_copies_the_teacher():
    family = get_training_family("brn")
    options = family.default_options()
    loss = family.distillation_loss(options, 0.5)
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    masks = (torch.rand(2, 1, 16, 16) > 0.9).float()
    assert loss.soft(logits, logits.detach()).abs().item() < 1e-6
    teacher = torch.randn(2, 2, 16, 16)
    value = loss(logits, teacher, masks, 0.5)
    assert torch.isfinite(value) and loss.soft(logits, teacher).item() > 0
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    task = family.make_loss(options)(logits, masks, 0.5)
    assert loss(logits, logits.detach(), masks, 0.5).item() == pytest.approx(0.5 * task.item(), rel=1e-5)


def test_lhrnet_distillation_pulls_the_student_towards_the_teacher():
    family = get_training_family("lhrnet")
    options = family.tiny_config().options
    network = family.build_network(family.arch_from_options(options)).train()
    teacher = family.build_network(family.arch_from_options(options)).eval()
    x = torch.rand(2, 4, 256, 512)
    loss = family.distillation_loss(options, 1.0)
    with torch.no_grad():
        target = teacher(x)
    outputs = network(x)
    assert loss.soft(target, target).item() == pytest.approx(0.0, abs=1e-7)
    soft = loss.soft(outputs, target)
    assert torch.isfinite(soft) and soft.item() > 0
    soft.backward()
    assert all(torch.isfinite(p.grad).all() for p in network.parameters() if p.grad is not None)


def test_student_widths():
    brn, lhrnet = get_training_family("brn"), get_training_family("lhrnet")
    assert brn.student_options(brn.default_options(), 8).base_width == 8
    assert brn.network_width({"base_width": 64}) == 64
    student = lhrnet.student_options(lhrnet.default_options(), 16)  # default widths (32, 64, 128, 256)
    assert student.widths == (16, 32, 64, 128) and student.fpn_channels == 64 and student.head_channels == 32
    with pytest.raises(InvalidInputError):
        brn.student_options(brn.default_options(), 0)
    with pytest.raises(InvalidInputError, match="positive integer"):
        lhrnet.student_options(lhrnet.default_options(), -4)


def test_a_teacher_of_another_family_is_refused(tiny_dataset, tmp_path):
    from training._config import TrainConfig
    from training._engine import train
    from training.checkpoint import save_checkpoint

    lhrnet = get_training_family("lhrnet")
    arch = lhrnet.arch_from_options(lhrnet.tiny_config().options)
    other = tmp_path / "lhrnet.pth"
    save_checkpoint(other, {"family": "lhrnet", "variant": "256x512", "arch": arch, "epoch": 0, "seed": 0,
                            "model_state_dict": lhrnet.build_network(arch).state_dict(),
                            **lhrnet.checkpoint_fields("256x512", arch)})
    brn = get_training_family("brn")
    with pytest.raises(InvalidInputError, match="same family and variant"):
        train(TrainConfig(out=tmp_path / "run", family="brn", data=tiny_dataset, epochs=1, steps_per_epoch=1,
                          batch_size=2, teacher=other, progress=False, tensorboard=False,
                          family_options=brn.tiny_config().options))


def test_a_tiny_rightsize_run_end_to_end(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "rightsize"
    code = main(["--teacher", str(tiny_checkpoint), "--data", str(tiny_dataset), "--widths", "2", "--out", str(out),
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--backends", "onnxruntime",
                 "--precisions", "fp32", "--rounds", "2", "--no-progress", "--device", "cpu"])
    assert code == 0
    table = json.loads((out / "rightsize.json").read_text())
    assert {(r["name"], r["precision"]) for r in table["rows"]} == {("teacher", "fp32"), ("w2", "fp32")}
    teacher = next(r for r in table["rows"] if r["name"] == "teacher")
    assert teacher["drop"] == 0.0 and teacher["agreement"] == 1.0 and teacher["width"] == 4
    within = [r for r in table["rows"] if r["drop"] <= 0.005 and r["agreement"] >= 0.99]
    chosen = table["rows"][table["recommended"]]
    assert chosen["ms"] == min(r["ms"] for r in within)  # the rule: the fastest within the budget
    assert chosen["bundle"] in table["command"] and "python -m runtime.infer" in table["command"]
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "Recommended" in (out / "report.md").read_text()
    assert (out / "w2" / "bundle" / "manifest.json").is_file() and (out / "w2" / "run" / "best.pth").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.parametrize("change, message", [
    ({"--widths": "8,x"}, "--widths must be comma-separated positive integers"),
    ({"--widths": "0"}, "--widths must be comma-separated positive integers"),
    ({"--teacher": "{tmp}/none.pth"}, "not found|no such|cannot"),
    ({"--data": "{tmp}/nowhere"}, "dataset folder not found"),
    ({"--backends": "tensorflow"}, "unsupported backend"),
])
def test_bad_usage_exits_2_before_anything_runs(tiny_checkpoint, tiny_dataset, tmp_path, capsys, change, message):
    import re

    args = {"--teacher": str(tiny_checkpoint), "--data": str(tiny_dataset), "--widths": "2",
            "--out": str(tmp_path / "out")}
    args.update({k: v.format(tmp=tmp_path) for k, v in change.items()})
    assert main([item for pair in args.items() for item in pair]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
